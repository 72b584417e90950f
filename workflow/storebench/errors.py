"""The one exception type for problems a user can cause and fix."""


class StorebenchError(Exception):
    """A user-facing error: its message names the problem and the fix, on one line."""
