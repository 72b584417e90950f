"""storebench: measure how image datasets behave in different storage formats."""

__version__ = "0.1.0"
