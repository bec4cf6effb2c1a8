"""Coverage simulation for benchmark.stats (a script, not a test).

Checks, through the public API, that
1. the 95% paired bootstrap CI of the mean difference (`bootstrap_mean_ci`, percentile, BCa and studentized,
   1000 resamples) covers the true mean difference 93-97% of the time at N in {16, 64, 553},
   on normal and on skewed (centred exponential) differences; the t interval is the reference;
2. TOST (`tost`) has size <= alpha = 0.05 when the true difference sits on the margin, and close
   to 0.05 once N has power; its simulated power at a true difference of 0 matches `tost_power`.

Every replication has its own seeded generator (data: ``default_rng([20260522, scenario, N, rep])``,
bootstrap: ``seed = DEFAULT_SEED + rep``), so results do not depend on --workers.

Usage (from the repository root):
    python benchmarks/stats_coverage.py                # full run, writes docs/stats-coverage.json
    python benchmarks/stats_coverage.py --quick        # smoke run, does not overwrite by default
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import scipy
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.stats import DEFAULT_SEED, bootstrap_mean_ci, tost, tost_power  # noqa: E402

MASTER = 20260522
NS = (16, 64, 553)
DELTA = 0.3  # true mean difference in the coverage scenarios (SD 1: coverage is scale-free)
DISTRIBUTIONS = {"normal": 0, "skewed (exponential, skewness 2)": 1}
# (metric, margin, SD of the paired differences): the paper's margins with plausible SDs
TOST_CASES = (("CLIP-T", 0.002, 0.004), ("ImageReward", 0.05, 0.3))
ALPHA = 0.05
CHUNK = 250


def _draw(dist_id: int, n: int, rep: int, tag: int = 0) -> np.ndarray:
    g = np.random.default_rng([MASTER, dist_id, n, rep, tag])
    if dist_id == 0:
        return DELTA + g.standard_normal(n)
    return DELTA + g.standard_exponential(n) - 1.0  # mean DELTA, SD 1, skewness 2


def _coverage_chunk(args: tuple) -> dict:
    dist_id, n, r0, r1, n_resamples = args
    hits = {"percentile": 0, "bca": 0, "studentized": 0, "t": 0}
    width = {"percentile": 0.0, "bca": 0.0, "studentized": 0.0, "t": 0.0}
    tq = stats.t.ppf(0.975, n - 1)
    for rep in range(r0, r1):
        x = _draw(dist_id, n, rep)
        for method in ("percentile", "bca", "studentized"):
            lo, hi = bootstrap_mean_ci(x, method=method, n_resamples=n_resamples, seed=DEFAULT_SEED + rep).ci
            hits[method] += int(lo <= DELTA <= hi)
            width[method] += hi - lo
        half = tq * x.std(ddof=1) / math.sqrt(n)
        hits["t"] += int(abs(x.mean() - DELTA) <= half)
        width["t"] += float(2 * half)
    return {"hits": hits, "width": width}


def _tost_chunk(args: tuple) -> dict:
    case_id, n, true_diff_sign, r0, r1 = args
    _, margin, sd = TOST_CASES[case_id]
    equivalent = 0
    for rep in range(r0, r1):
        g = np.random.default_rng([MASTER, 100 + case_id, n, rep, true_diff_sign + 2])
        x = true_diff_sign * margin + sd * g.standard_normal(n)
        equivalent += int(tost(x, margin=margin, alpha=ALPHA).decision == "equivalent")
    return {"equivalent": equivalent}


def _chunks(reps: int) -> list[tuple[int, int]]:
    return [(r, min(reps, r + CHUNK)) for r in range(0, reps, CHUNK)]


def _rate(k: int, m: int) -> dict:
    p = k / m
    return {"rate": p, "mc_se": math.sqrt(p * (1 - p) / m)}


def run(reps: int, tost_reps: int, power_reps: int, n_resamples: int, workers: int) -> dict:
    t0 = time.perf_counter()
    cov_jobs = [(d, n, r0, r1, n_resamples) for d in DISTRIBUTIONS.values() for n in NS for r0, r1 in _chunks(reps)]
    size_jobs = [(c, n, s, r0, r1) for c in range(len(TOST_CASES)) for n in NS for s in (-1, 1)
                 for r0, r1 in _chunks(tost_reps)]
    power_jobs = [(c, n, 0, r0, r1) for c in range(len(TOST_CASES)) for n in NS for r0, r1 in _chunks(power_reps)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        cov_out = list(pool.map(_coverage_chunk, cov_jobs))
        size_out = list(pool.map(_tost_chunk, size_jobs))
        power_out = list(pool.map(_tost_chunk, power_jobs))

    coverage = []
    for name, d in DISTRIBUTIONS.items():
        for n in NS:
            parts = [o for j, o in zip(cov_jobs, cov_out) if j[0] == d and j[1] == n]
            row = {"distribution": name, "n": n, "reps": reps}
            for method, label in (("percentile", "percentile"), ("bca", "bca"), ("studentized", "studentized"),
                                  ("t", "t_interval")):
                k = sum(p["hits"][method] for p in parts)
                row[label] = {"coverage": k / reps, "mc_se": _rate(k, reps)["mc_se"],
                              "mean_width": sum(p["width"][method] for p in parts) / reps,
                              "in_93_97": bool(0.93 <= k / reps <= 0.97)}
            coverage.append(row)

    tost_rows = []
    for c, (metric, margin, sd) in enumerate(TOST_CASES):
        for n in NS:
            size_k = sum(o["equivalent"] for j, o in zip(size_jobs, size_out) if j[0] == c and j[1] == n)
            pow_k = sum(o["equivalent"] for j, o in zip(power_jobs, power_out) if j[0] == c and j[1] == n)
            size = _rate(size_k, 2 * tost_reps)
            size_limit = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / (2 * tost_reps))
            tost_rows.append({
                "metric": metric, "margin": margin, "sd": sd, "n": n, "margin_over_se": margin / (sd / math.sqrt(n)),
                "size_at_margin": size["rate"], "size_mc_se": size["mc_se"], "size_reps": 2 * tost_reps,
                # below alpha, or within 2 Monte Carlo SEs (computed at alpha) of it
                "size_at_most_alpha": bool(size["rate"] <= size_limit),
                "power_at_zero_simulated": pow_k / power_reps, "power_reps": power_reps,
                "power_at_zero_nct": tost_power(n, sd, margin, alpha=ALPHA),
                "power_at_zero_exact": tost_power(n, sd, margin, alpha=ALPHA, method="exact"),
            })
    return {
        "generated": dt.date.today().isoformat(),
        "command": " ".join(["python benchmarks/stats_coverage.py", *sys.argv[1:]]),
        "machine": "2-core CPU dev box",
        "platform": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "cpus": os.cpu_count(), "workers": workers},
        "runtime_s": round(time.perf_counter() - t0, 1),
        "settings": {"reps": reps, "tost_reps_per_sign": tost_reps, "power_reps": power_reps,
                     "n_resamples": n_resamples, "confidence": 0.95, "alpha": ALPHA, "true_mean_difference": DELTA,
                     "sd": 1.0, "ns": list(NS), "data_seed": f"default_rng([{MASTER}, scenario, N, rep, tag])",
                     "bootstrap_seed": f"{DEFAULT_SEED} + rep"},
        "coverage": coverage,
        "tost": tost_rows,
    }


def _print(res: dict) -> None:
    print(f"coverage of the 95% CI of the mean difference ({res['settings']['reps']} reps, "
          f"{res['settings']['n_resamples']} resamples)")
    print(f"{'distribution':34} {'N':>4} {'percentile':>16} {'BCa':>16} {'studentized':>16} {'t interval':>16}")
    for r in res["coverage"]:
        cells = [f"{r[m]['coverage']:.3f} +- {r[m]['mc_se']:.3f}" for m in ("percentile", "bca", "studentized", "t_interval")]
        print(f"{r['distribution']:34} {r['n']:>4} " + " ".join(f"{c:>16}" for c in cells))
    print("\nTOST at alpha=0.05: P(declare equivalent) at true difference = +-margin (size) and 0 (power)")
    print(f"{'metric':12} {'margin':>7} {'SD':>6} {'N':>4} {'margin/SE':>9} {'size':>15} "
          f"{'power sim':>9} {'nct':>6} {'exact':>6}")
    for r in res["tost"]:
        print(f"{r['metric']:12} {r['margin']:>7g} {r['sd']:>6g} {r['n']:>4} {r['margin_over_se']:>9.2f} "
              f"{r['size_at_margin']:.4f} +- {r['size_mc_se']:.4f} {r['power_at_zero_simulated']:>9.3f} "
              f"{r['power_at_zero_nct']:>6.3f} {r['power_at_zero_exact']:>6.3f}")
    print(f"\nruntime {res['runtime_s']} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5000, help="coverage replications per (distribution, N)")
    ap.add_argument("--tost-reps", type=int, default=5000, help="TOST size replications per sign of the margin")
    ap.add_argument("--power-reps", type=int, default=2000, help="TOST power replications at a difference of 0")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="300/500/200 reps; prints only unless --out is given")
    ap.add_argument("--out", default=None, help="JSON output (default docs/stats-coverage.json; none with --quick)")
    a = ap.parse_args()
    if a.quick:
        a.reps, a.tost_reps, a.power_reps = 300, 500, 200
    res = run(a.reps, a.tost_reps, a.power_reps, a.resamples, a.workers)
    _print(res)
    out = a.out or (None if a.quick else str(ROOT / "docs" / "stats-coverage.json"))
    if out:
        Path(out).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
