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


# The slow tests (the emulated GPU kernels, the experiments' quick runs, memory and
# responsiveness checks in fresh processes, the largest reference cases) run with --slow,
# as CI runs them; the default run leaves them out and says how many.
def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (CI does)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)


def pytest_report_header(config):
    if not config.getoption("--slow"):
        return "the tests marked slow are left out (run them with --slow, as CI does)"
