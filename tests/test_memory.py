"""Memory stays O((Q + N) d) plus fixed tiles: no Q x N buffer anywhere."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow


def test_one_million_components_under_one_gigabyte():
    # Q = 1000, N = 1,000,000, d = 16. Run in a fresh interpreter and
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


@pytest.mark.parametrize("prune", [False, True])
def test_a_prepared_mixture_holds_two_copies_of_the_data_not_three(prune):
    """float32, 16 < d <= 1024: the centred rows (read by the second product) and the row panels of
    the first product; the column panels of the second product are gone (they were a third copy).
    With pruning, the projection adds k / d of the data (k = 64 coordinates here, 1/8)."""
    code = (
        "import numpy as np, ledkde\n"
        "from ledkde._mixture import projection_k\n"
        "# A first, small mixture: the BLAS and LAPACK buffers of this process are made here.\n"
        "ledkde.Mixture(np.random.default_rng(1).random((4096, 512), dtype=np.float32))\n"
        "x = np.random.default_rng(0).random((40000, 512), dtype=np.float32)\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024\n"
        "before = rss()\n"
        f"mix = ledkde.Mixture(x, prune={prune})\n"
        "print((rss() - before) / x.nbytes, ledkde._core.TILE_GEMM_ISA, projection_k(512) / 512)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ratio, isa, part = res.stdout.split()
    # Two copies with the tile products (rows + panels), one without (BLAS): a little over, for norms.
    expected = (1.0 if isa == "none" else 2.0) + (float(part) if prune else 0.0)
    assert float(ratio) < expected + 0.2, f"the prepared mixture holds {float(ratio):.2f}x the data ({isa})"
