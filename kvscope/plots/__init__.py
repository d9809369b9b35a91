"""Deprecated package: the figures moved into each command's package (``kvscope.analyze``, ``kvscope.bench``,
...) and the shared helpers into ``kvscope.kit.figures``; ``kvscope.plots.analyze`` stays one release."""
