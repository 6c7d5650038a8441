"""Two builds of ledkde timed in turn on the same cases (the A/B of bench/README.md).

    python bench/compare_builds.py OLD_SITE [NEW_SITE] [--rounds 2] [--calls 5]

OLD_SITE / NEW_SITE: folders that hold a `ledkde` package (for example one made by
`pip install --no-deps --target /tmp/old .` in a worktree of an older commit); NEW_SITE
defaults to the installed one. Each case runs in its own process per build, the builds
alternating, `rounds` times; a case reports the fastest of `calls` calls over the "limit"
(4 Q N d flops at NumPy's sgemm rate, measured once here), a sampler run its seconds.
Fashion-MNIST cases are left out when the data set is not installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

CASE = r'''
import sys, time, numpy as np, ledkde
kind, t, q, calls, prune = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
rng = np.random.default_rng(1)
if kind in ("fashion", "sampler"):
    try:
        from ledkde.experiments import data as D
    except ImportError:  # the package layout of older builds
        import ledkde._data as D
    data = D.fashion_mnist()[0].reshape(-1, 784)
elif kind == "d2":
    data = rng.standard_normal((4096, 2)).astype(np.float32)
elif kind == "images":
    data = rng.random((10000, 784), dtype=np.float32)
else:
    data = rng.random((50000, 64), dtype=np.float32)
mix = ledkde.Mixture(data, prune=prune)
if kind == "sampler":  # a whole run: q samples, 100 steps of the default grid
    from ledkde._bandwidth import sampler_defaults
    grid = sampler_defaults(data, ledkde.median_nn_distance(data))
    run = lambda: ledkde.sample(mix, q, steps=100, seed=0, **grid)
else:
    y = (data[rng.integers(0, len(data), q)] + np.sqrt(t) * rng.standard_normal((q, data.shape[1]))).astype(np.float32)
    run = lambda: ledkde.score(y, mix, t)
run()
best = float("inf")
for _ in range(calls):
    t0 = time.perf_counter(); run(); best = min(best, time.perf_counter() - t0)
print(best, len(data), data.shape[1])
'''

CASES = [("d2", 0.001, 4096, False), ("images", 0.02, 1024, False), ("images", 0.5, 1024, False),
         ("uniform", 0.05, 2048, False), ("uniform", 0.5, 2048, False), ("uniform", 5.0, 2048, False),
         ("fashion", 0.3, 256, False), ("fashion", 1.0, 256, False), ("fashion", 3.0, 256, False),
         ("fashion", 10.0, 256, False), ("fashion", 3.0, 1024, False), ("fashion", 10.0, 1024, False),
         ("fashion", 0.1, 256, True), ("fashion", 0.003, 256, True), ("sampler", 0.0, 64, True)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new", nargs="?", default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args()
    a = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    rate = 2 * 4096**3 / best
    print(f"NumPy sgemm {rate / 1e9:.0f} GFLOP/s")
    fashion = os.path.isdir("/usr/share/datasets/fashion-mnist")
    builds = {"old": args.old, "new": args.new}
    print("| case | " + " | ".join(f"{b} (x limit)" for b in builds) + " |")
    print("| --- | --- | --- |")
    for kind, t, q, prune in CASES:
        if kind in ("fashion", "sampler") and not fashion:
            continue
        times = {b: [] for b in builds}
        for _ in range(args.rounds):
            for b, site in builds.items():
                env = dict(os.environ)
                if site:
                    env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
                out = subprocess.run([sys.executable, "-c", CASE, kind, str(t), str(q), str(args.calls),
                                      "1" if prune else "0"], env=env, capture_output=True, text=True,
                                     check=True).stdout.split()
                sec, n, d = float(out[0]), int(out[1]), int(out[2])
                # A sampler run reports seconds; a pass, its time over the limit.
                times[b].append(sec if kind == "sampler" else sec / (4.0 * q * n * d / rate))
        label = (f"sampler {q} samples, 100 steps (s)" if kind == "sampler"
                 else f"{kind} Q={q} t={t:g}" + (" pruned" if prune else ""))
        unit = "s" if kind == "sampler" else "x"
        cells = [f"{min(v):.2f}-{max(v):.2f}{unit}" for v in times.values()]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
