"""ledkde: empirical and kernel-smoothed (double-kernel, LED-KDE) diffusion scores and
training-free reverse-diffusion samplers, computed by a compiled engine.

Arrays are NumPy arrays: queries ``y`` of shape (Q, d), data of shape (N, d).
See ``ledkde.reference`` for the plain NumPy definitions of every operation.
"""

from ._loader import _core  # noqa: F401  (loads the compiled engine and its BLAS)
from ._scores import (
    Mixture,
    PassState,
    denoise,
    evaluate,
    finalize,
    led_kde_log_density,
    log_density,
    merge_states,
    partial_state,
    score,
    smoothed_score,
)
from ._sampler import sample, time_grid

__version__ = "0.1.0"

__all__ = [
    "Mixture",
    "PassState",
    "denoise",
    "evaluate",
    "finalize",
    "led_kde_log_density",
    "log_density",
    "merge_states",
    "partial_state",
    "sample",
    "score",
    "smoothed_score",
    "time_grid",
]
