"""What the prune results show in a notebook (``kvscope.kit.results``): their summary and table rows.

Every row is a ``(name, value)`` pair; the kit escapes and lays them out.
"""

from __future__ import annotations

from typing import Any

EXAMPLE_NOTE = "One text: an example, not a ranking. Compare strategies over many samples with kvscope bench."


def _ms(m: Any, key: str) -> str:
    median, spread = getattr(m, key), getattr(m, f"{key}_range")
    return "n/a" if median is None else f"{median:.1f} [{spread[0]:.1f}, {spread[1]:.1f}]"


def _sign(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f} %"


def prune_details(r: Any) -> list[tuple[str, str]]:
    """Baseline -> pruned, with the change: perplexity, latencies with their spread, KV bytes."""
    b, p, ch, within = r.baseline, r.pruned, r.changes(), r.within_spread()
    noise = {k: " (within spread)" if on else "" for k, on in within.items()}
    return [
        ("plan", r.plan),
        ("continuation perplexity", f"{b.ppl:.3f} -> {p.ppl:.3f} ({_sign(ch['ppl'])})"),
        (
            "continuation forward ms, median [min, max]",
            f"{_ms(b, 'continuation_ms')} -> {_ms(p, 'continuation_ms')} "
            f"({_sign(ch['continuation_ms'])}){noise['continuation_ms']}",
        ),
        (
            f"decode {r.decode_tokens} tokens ms",
            f"{_ms(b, 'decode_ms')} -> {_ms(p, 'decode_ms')} ({_sign(ch['decode_ms'])}){noise['decode_ms']}",
        ),
        (f"KV bytes ({r.cache_dtype})", f"{b.kv_bytes:,} -> {p.kv_bytes:,} ({_sign(ch['kv_bytes'])})"),
        ("KV bytes (float16)", f"{b.kv_bytes_fp16:,} -> {p.kv_bytes_fp16:,} ({_sign(ch['kv_bytes_fp16'])})"),
    ]


def prune_notes(r: Any) -> list[str]:
    return [
        EXAMPLE_NOTE,
        f"{r.prompt_tokens} prompt tokens prefilled {r.prefills} time(s); {r.scored_tokens} "
        f"continuation tokens scored; torch threads {r.torch_threads}.",
        *r.warnings,
    ]


def sweep_details(r: Any) -> list[tuple[str, str]]:
    """One row per configuration: perplexity, its change and the share of KV bytes kept."""
    return [
        (
            f"{x.method} {x.setting}",
            f"ppl {x.ppl:.3f} ({x.ppl_change_pct:+.1f} %), KV bytes {x.kv_bytes:,}: kept "
            f"{100 * x.kv_fraction:.1f} % ({100 * x.kv_fraction_fp16:.1f} % in float16)",
        )
        for x in r.rows
    ]


def sweep_notes(r: Any) -> list[str]:
    return [EXAMPLE_NOTE, f"{r.prompt_tokens} prompt tokens, prefilled {r.prefills} time(s).", *r.warnings]
