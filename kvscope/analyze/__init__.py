"""``kvscope analyze`` and ``kvscope compare``: the analyses of a ``KVSnapshot``, their figures, explanations
and report page.

Each analysis module is one pure function returning a frozen dataclass; ``ANALYSES`` (in
``kvscope.analyze.registry``) lists them by name, ``FIGURES`` (in ``kvscope.analyze.figure_registry``) their
figures. ``analysis`` holds ``analyze`` and ``AnalyzeResult``, ``comparison`` holds ``compare``.
"""
