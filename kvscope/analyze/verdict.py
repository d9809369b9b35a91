"""The importance verdict: its class comes from an interval, never from the point estimate alone.

Classes (``classify``), for a correlation ``rho`` with a 95 % interval ``[low, high]`` and the threshold
``HOLDS`` = 0.3 on ``|rho|``:

- ``holds``: the whole interval is at or above +0.3;
- ``inverted``: the whole interval is at or below -0.3;
- ``does not hold``: the whole interval is strictly inside (-0.3, +0.3);
- ``inconclusive``: the interval spans 0 and reaches past ±0.3;
- ``not established``: the interval is on one side of 0 but crosses ±0.3, so whether ``|rho| >= 0.3`` is
  not established;
- ``unknown``: no finite value, or fewer than ``MIN_TOKENS`` tokens on the only prompt.

One prompt's interval is over tokens: Fisher's z with the standard error of a Spearman correlation,
``sqrt(1.06 / (n - 3))`` (Fieller, Hartley & Pearson, Biometrika 1957), with one degree more removed for
the controlled variable (position). Many prompts' interval is the bootstrap over prompts
(``kvscope.stats.bootstrap_ci``).
"""

from __future__ import annotations

import math

import numpy as np

from kvscope.stats import spearman

HOLDS = 0.3  # |rho| below this is "no meaningful relation"
MIN_TOKENS = 10  # fewer tokens on one prompt: "cannot be judged"
CONTROL = "partial Spearman given position"
Z95 = 1.959964


def classify(rho: float, low: float, high: float) -> str:
    """The verdict class of ``rho`` with its interval ``[low, high]`` (see the module doc)."""
    if not all(np.isfinite(v) for v in (rho, low, high)):
        return "unknown"
    if low >= HOLDS:
        return "holds"
    if high <= -HOLDS:
        return "inverted"
    if low > -HOLDS and high < HOLDS:
        return "does not hold"
    if low <= 0 <= high:
        return "inconclusive"
    return "not established"


def token_interval(rho: float, n: int, controls: int = 1) -> tuple[float, float]:
    """95 % interval of a (partial) Spearman ``rho`` over ``n`` tokens with ``controls`` controlled
    variables: Fisher's z with the Fieller-Hartley-Pearson standard error (NaNs when undefined)."""
    dof = n - 3 - controls
    if not np.isfinite(rho) or dof < 1:
        return float("nan"), float("nan")
    z = math.atanh(float(np.clip(rho, -0.999999, 0.999999)))
    half = Z95 * math.sqrt(1.06 / dof)
    return math.tanh(z - half), math.tanh(z + half)


def why_unknown(proxy: np.ndarray, reference: np.ndarray, position: np.ndarray) -> str:
    """Why one prompt's partial correlation cannot be judged: too few tokens, or a side that is a
    monotone function of position (nothing is left of it once position is controlled for)."""
    keep = np.isfinite(proxy) & np.isfinite(reference) & np.isfinite(position)
    n = int(keep.sum())
    if n < MIN_TOKENS:
        return f"{n} tokens; at least {MIN_TOKENS} are needed"
    for name, side in (("the reference", reference), ("magnitude", proxy)):
        rho = spearman(side[keep], position[keep])
        if np.isfinite(rho) and abs(rho) > 1 - 1e-9:
            return f"{name} is a monotone function of position: nothing is left of it once position is controlled for"
    return "the correlation is undefined (a constant proxy or reference)"


def _what(kind: str, reference: str, rho: float, reason: str) -> str:
    more = "get more attention" if reference == "attention" else "matter more"
    side = "positive" if rho > 0 else "negative"
    return {
        "holds": f"holds (the whole interval is at or above +{HOLDS})",
        "inverted": f"is inverted (low-magnitude tokens {more})",
        "does not hold": f"does not hold (|rho| < {HOLDS} over the whole interval)",
        "inconclusive": "is inconclusive (the interval spans 0)",
        "not established": f"is not established (the correlation is {side}, but the interval crosses |rho| = {HOLDS})",
        "unknown": f"cannot be judged ({reason or 'no finite correlation'})",
    }[kind]


def sentence(
    kind: str,
    reference_name: str,
    reference_text: str,
    rho: float,
    interval: tuple[float, float],
    basis: str,
    reason: str = "",
) -> str:
    """The verdict sentence: the class, what it rests on, the number and its interval (``basis`` says
    over what, e.g. "over 9 prompts"). A value that is not finite is never printed."""
    head = f'"Low magnitude = low importance" {_what(kind, reference_name, rho, reason)}'
    if kind == "unknown" or not np.isfinite(rho):
        return f"{head}: {CONTROL} of magnitude with the {reference_text}, {basis}."
    lo, hi = interval
    ci = f", 95 % interval [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{head}: {CONTROL} of magnitude with the {reference_text} is {rho:+.2f}{ci} {basis}."


__all__ = ["CONTROL", "HOLDS", "MIN_TOKENS", "classify", "sentence", "token_interval", "why_unknown"]
