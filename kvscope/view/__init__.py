"""``kvscope view``: an offline page showing a captured cache and what each eviction strategy keeps
(``export``), or a bench run's answers and eviction maps (``bench``); built and served by ``page``."""

from kvscope.view.api import ViewPage, view

__all__ = ["ViewPage", "view"]
