"""Round-by-round ratios of benchmark runs and their 95% intervals (bench/driver.py, bench/pool.py).

A round is the runs with the same number in one invocation of the driver: they ran next to each
other in time, so the ratio of two kinds within a round cancels most of the machine's drift.
"""

import math
import statistics

# Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t95(df: int) -> float:
    """Two-sided 95% quantile of Student's t with `df` degrees of freedom."""
    if df <= len(_T95):
        return _T95[df - 1]
    # Cornish-Fisher expansion around the normal quantile: within 0.001 of the table from 30 on.
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_ci95(values: list[float]) -> tuple[float, float, float]:
    """The mean of at least two values and its 95% interval: (mean, low, high)."""
    mean = statistics.mean(values)
    half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def round_pairs(rows: list[dict], kind: str, base: str) -> list[tuple[dict, dict]]:
    """(run of `kind`, run of `base`) for every round of one invocation in which both ran."""
    runs = {(r["kind"], r["run"]): r for r in rows}
    return [(r, runs[(base, r["run"])]) for r in rows if r["kind"] == kind and (base, r["run"]) in runs]


def ratio_summary(values: list[float]) -> dict:
    """Mean with its 95% interval, median and range of per-round ratios (at least two)."""
    mean, low, high = mean_ci95(values)
    values = sorted(values)
    return {"mean": mean, "ci95": [low, high], "median": statistics.median(values), "min": values[0],
            "max": values[-1]}


def pair_ratios(pairs: list[tuple[dict, dict]]) -> dict:
    """ratio_summary of the CPU and the throughput ratios of at least two (run, base run) pairs."""
    return {key: ratio_summary([a[key] / b[key] for a, b in pairs]) for key in ("cpu_ms_per_wf", "wf_per_s")}


def describe(summary: dict) -> str:
    """`1.070 (95% 1.050-1.090), median 1.060, range 1.01-1.15` for a ratio_summary."""
    low, high = summary["ci95"]
    return (f"{summary['mean']:.3f} (95% {low:.3f}-{high:.3f}), median {summary['median']:.3f}, "
            f"range {summary['min']:.2f}-{summary['max']:.2f}")
