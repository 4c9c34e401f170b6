"""The figures drawn from a tool's samples: min, median and nearest-rank p99."""

from __future__ import annotations


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarize(samples: list[float]) -> dict:
    """The per-tool entry of a scenario's results; samples_ms keeps the run order."""
    s = sorted(samples)
    return {"n": len(s), "min_ms": s[0], "median_ms": median(s),
            "p99_ms": percentile(s, 99), "samples_ms": samples}
