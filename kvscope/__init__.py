"""kvscope: see, measure and shrink the KV cache of a transformer language model.

Vocabulary used everywhere: ``layer``, ``kv_head``, ``q_head``, ``position``, ``head_dim``.
"""

__version__ = "0.1.0"
