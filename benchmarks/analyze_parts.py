"""CPU time of the two parts of ``kvscope analyze`` that issue 24's change made cheaper, old way against new.

- Spearman: 912 calls as one default run makes them (90 layer x kv_head pairs of 213 positions and the
  rest), ``scipy.stats.spearmanr`` (and the import of ``scipy.stats`` it needs, in a fresh process) against
  ``kvscope.stats.spearman``;
- the palette PNG of the largest figure (``kv_cache_layers`` is drawn like it: a tall stack of heatmaps):
  through a PNG round trip against through an uncompressed TIFF.

Each pair runs alternately ``--repeats`` times in fresh processes; process CPU time (user + sys), which
other jobs on the machine disturb less than wall time. Usage: ``python benchmarks/analyze_parts.py``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SPEARMAN_OLD = """
import numpy as np
rng = np.random.default_rng(0); xs = [(rng.normal(size=213), rng.normal(size=213)) for _ in range(912)]
from scipy.stats import spearmanr
r = [float(spearmanr(x, y).statistic) for x, y in xs]
"""
SPEARMAN_NEW = """
import numpy as np
rng = np.random.default_rng(0); xs = [(rng.normal(size=213), rng.normal(size=213)) for _ in range(912)]
from kvscope.stats import spearman
r = [spearman(x, y) for x, y in xs]
"""
FIGURE = """
import io, numpy as np, matplotlib
matplotlib.use("Agg")
from matplotlib.figure import Figure
from PIL import Image
from kvscope.analyze.figure_registry import encode
from kvscope.kit.figures import DPI
fig = Figure(figsize=(12, 40))
for i, ax in enumerate(fig.subplots(30, 2).ravel()):
    ax.imshow(np.random.default_rng(i).normal(size=(3, 213)), aspect="auto")
"""
PALETTE_OLD = (
    FIGURE
    + """
buf = io.BytesIO(); fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
out = io.BytesIO()
Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
"""
)
PALETTE_NEW = (
    FIGURE
    + """
encode(fig, "png", palette=True)
"""
)


def cpu_of(code: str) -> float:
    """CPU seconds of a fresh ``python -c code`` (imports included)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    wrapped = code + "\nimport resource, json\nu = resource.getrusage(resource.RUSAGE_SELF)\n"
    wrapped += "print(json.dumps(u.ru_utime + u.ru_stime))\n"
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = cpu_of("import numpy")
    load0 = os.getloadavg()[0]
    for name, old, new in (("spearman", SPEARMAN_OLD, SPEARMAN_NEW), ("palette PNG", PALETTE_OLD, PALETTE_NEW)):
        o, n = [], []
        for _ in range(args.repeats):
            o.append(cpu_of(old) - base)
            n.append(cpu_of(new) - base)
        mo, mn = statistics.median(o), statistics.median(n)
        spread = f"({min(o):.2f}-{max(o):.2f}) | {mn:.2f} ({min(n):.2f}-{max(n):.2f})"
        print(f"| {name} | {mo:.2f} {spread} | {mo / mn:.2f}x |")
    print(
        f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; numpy import alone {base:.2f} s"
    )


if __name__ == "__main__":
    main()
