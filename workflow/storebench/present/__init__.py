"""Presentation: tables, figures, captions, the summary and verdict, run-to-run
comparison and the workflow's own cost, made from result files.

Nothing here measures, and nothing here imports a module that does (a test checks
the imports both ways): editing these modules changes no timed job's fingerprint
(:func:`storebench.provenance.code_version` skips this folder), so rewording a
caption or the verdict reruns only the jobs that draw and write.
"""
