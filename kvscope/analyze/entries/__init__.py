"""The built-in analyses, one module each: the module calls ``kvscope.analyze.registry.register`` once with
its ``Analysis`` (compute, needs, figures with their explanations, ``metrics.json`` entry, aggregation over
prompts). ``kvscope.analyze.registry`` imports every module here, so a new analysis is one module plus its
test. The heavy code (tensors, Matplotlib) is imported when it runs, not when the registry loads."""
