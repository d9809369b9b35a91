"""``kvscope view``: an offline page showing a captured cache and what each eviction strategy keeps
(``export``), or a bench run's answers and eviction maps (``bench``); built and served by ``page``.

``ks.view(source, ...)`` calls :func:`kvscope.view.viewer.view`. This package is callable too: importing any
of its modules makes ``kvscope.view`` (the attribute of ``kvscope``) this package, so calling it must
still mean ``view``.
"""

import sys
import types

from kvscope.view.viewer import ViewPage, view


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs) -> ViewPage:
        return view(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
__all__ = ["ViewPage", "view"]
