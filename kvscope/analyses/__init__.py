"""Analyses of a ``KVSnapshot``: each module is one pure function returning a frozen dataclass.

No analysis does I/O or plotting. ``ANALYSES`` (in ``kvscope.analyses.registry``) lists them by name.
"""
