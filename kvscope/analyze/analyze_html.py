"""Build the self-contained ``report.html``: no network, images inlined as data URIs, all token text
escaped (HTML-escaped in markup; inside the JSON data element every ``<``, ``>`` and ``&`` is a
``\\u`` escape, so a prompt containing ``</script>`` cannot close it)."""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from kvscope.fileio import to_jsonable

MIME = {"png": "image/png", "svg": "image/svg+xml"}


def safe_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def data_uri(payload: bytes, fmt: str) -> str:
    return f"data:{MIME.get(fmt, 'application/octet-stream')};base64,{base64.b64encode(payload).decode('ascii')}"


def _figures(figures: dict[str, dict], specs: dict, images: dict[str, str]) -> str:
    parts = []
    for name, status in figures.items():
        spec = specs[name]
        title = html.escape(spec.title)
        files = ", ".join(html.escape(Path(f).name) for f in status.get("files", []))
        if "files" in status and name in images:
            parts.append(
                f'<figure id="{html.escape(name)}"><h3>{title} <small>({files})</small></h3>'
                f'<img alt="{html.escape(name)}" src="{images[name]}">'
                f"<figcaption>{html.escape(spec.explanation)}</figcaption></figure>"
            )
        else:
            parts.append(
                f'<figure id="{html.escape(name)}"><h3>{title}</h3><p class="skipped">Not drawn: '
                f"{html.escape(status.get('skipped', 'no image'))}</p></figure>"
            )
    return "\n".join(parts)


def _short(value: Any) -> Any:
    """Floats to 4 significant digits, for display only (metrics.json keeps every digit)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def _headline_rows(head: dict[str, Any]) -> str:
    rows = []
    for key, value in head.items():
        if key == "verdict":
            continue
        shown = json.dumps(_short(to_jsonable(value)), ensure_ascii=False)
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(shown)}</td></tr>")
    return '<table class="head">' + "".join(rows) + "</table>"


def build_report(
    metrics: dict[str, Any], token_data: dict[str, Any], specs: dict, images: dict[str, str] | None = None
) -> str:
    """The report's HTML text. ``token_data``: per-token lists (tokens, types, key_norm, value_norm,
    magnitude, attention, sink); ``specs``: the figure registry (titles and explanations)."""
    template = resources.files("kvscope.analyze").joinpath("template.html").read_text(encoding="utf-8")
    head = metrics["headline"]
    verdict = head.get("verdict", "Attention was not captured, so importance proxies were not checked.")
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in metrics["warnings"])
    colorby = (
        "attention received"
        if any(a is not None for a in to_jsonable(token_data["attention"]))
        else "magnitude (no attention data)"
    )
    fills = {
        "title": html.escape(f"{metrics['model']['name']} ({metrics['prompt']['tokens']} tokens)"),
        "verdict": html.escape(verdict),
        "warnings": warnings,
        "headline": _headline_rows(head),
        "colorby": colorby,
        "figures": _figures(metrics["figures"], specs, images or {}),
        "version": html.escape(metrics["kvscope_version"]),
        "data": safe_json({"tokens": token_data, "headline": head}),
    }
    # one pass, so text filled in (which may contain "{{...}}") is never substituted again
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fills[m.group(1)], template)
