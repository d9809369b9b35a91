"""The shared kit every command package builds on: ``figures`` (Matplotlib helpers), ``pages`` (the HTML
of a result's notebook view) and ``results`` (the result contract: ``ResultMixin``)."""
