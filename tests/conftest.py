import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Generated cases: enough to explore shapes and scales, few enough for a
# 2-core CI machine. LEDKDE_HYPOTHESIS=thorough runs ten times as many.
settings.register_profile("default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("LEDKDE_HYPOTHESIS", "default"))


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def make_problem(seed, q, n, d, t_scale, *, weights=False, variances=False, offset=0.0):
    """Queries near the data at distance ~sqrt(t), data of unit scale, optional mixture parts."""
    r = np.random.default_rng(seed)
    data = r.normal(size=(n, d)) + offset
    j = r.integers(0, n, size=q)
    y = data[j] + np.sqrt(t_scale) * r.normal(size=(q, d))
    lw = r.normal(size=n) * 2 if weights else None
    var = r.uniform(0, 2 * t_scale, size=n) if variances else None
    return y, data, lw, var
