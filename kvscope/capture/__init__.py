"""``kvscope capture``: one forward pass, its KV cache copied into a ``KVSnapshot`` (``capturing``)."""
