"""The one place that knows how the installed transformers names a model's cache argument.

transformers 5.x renamed the forward keyword ``past_key_values`` to ``cache`` (and the output field
likewise); the old name warns and is due to be removed. Every forward call that passes a cache goes
through :func:`forward` so no deprecation warning reaches users and older releases keep working.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.lru_cache(maxsize=64)
def _cache_keyword(forward_cls: type) -> str:
    params = inspect.signature(forward_cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_keyword(model: Any) -> str:
    """``"cache"`` where the model's forward takes it, else ``"past_key_values"``."""
    return _cache_keyword(type(model))


def forward(model: Any, cache: Any = None, **kwargs: Any) -> Any:
    """``model(**kwargs)`` with ``cache`` passed under the keyword this transformers expects."""
    if cache is not None:
        kwargs[cache_keyword(model)] = cache
    return model(**kwargs)


def output_cache(output: Any) -> Any:
    """The cache a forward returned (``output.cache``, or ``output.past_key_values`` before 5.x's rename)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def moved_module(old: str, *targets: str) -> Any:
    """A ``__getattr__`` for a module kept one release at an ``old`` import path after it moved to ``targets``.

    Warns once with a ``DeprecationWarning`` when the old module is imported, then forwards every
    attribute to the first target module that has it.
    """
    import importlib
    import warnings

    warnings.warn(
        f"{old} moved to {' and '.join(targets)}; the old import path goes in the next release",
        DeprecationWarning,
        stacklevel=3,
    )

    def __getattr__(name: str) -> Any:
        for target in targets:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
