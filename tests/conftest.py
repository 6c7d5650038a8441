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
