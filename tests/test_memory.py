"""Memory stays O((Q + N) d) plus fixed tiles: no Q x N buffer anywhere."""

import subprocess
import sys
import textwrap


def test_one_million_components_under_one_gigabyte():
    # Q = 1000, N = 1,000,000, d = 16 (issue 2). Run in a fresh interpreter and
    # read its peak resident set size (VmHWM, KiB). Not ru_maxrss: Linux carries
    # that across fork + exec, so it reported the pytest process's own peak once
    # earlier tests had made it large. A Q x N float32 matrix alone would take 4 GB.
    code = textwrap.dedent("""
        import numpy as np
        import ledkde
        rng = np.random.default_rng(0)
        data = rng.normal(size=(1_000_000, 16)).astype(np.float32)
        y = rng.normal(size=(1000, 16)).astype(np.float32)
        out = ledkde.evaluate(y, data, 0.5, outputs=("score", "log_density"))
        assert np.isfinite(out["score"]).all() and np.isfinite(out["log_density"]).all()
        with open("/proc/self/status") as fh:
            print(next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_mib = int(res.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mib < 1024, f"peak resident memory {peak_mib:.0f} MiB"
