"""``kvscope analyze`` and ``kvscope compare``: the analyses of a ``KVSnapshot``, their figures, explanations
and report page.

Each analysis is one registry entry (``kvscope.analyze.registry.Analysis``), declared by one module of
``kvscope.analyze.entries``: its computation (a pure function returning a frozen dataclass), its figures
with their explanations, its ``metrics.json`` entry and its aggregation over prompts. ``ANALYSES`` and
``FIGURES`` (``kvscope.analyze.registry``) are read by the report, ``metrics.json``, the many-prompt path
and the CLI. ``analysis`` holds ``analyze`` and ``AnalyzeResult``, ``comparison`` holds ``compare``.
"""
