"""ledkde: empirical and kernel-smoothed (double-kernel, LED-KDE) diffusion scores and
training-free reverse-diffusion samplers, computed by a compiled engine.

Arrays are NumPy arrays: queries ``y`` of shape (Q, d), data of shape (N, d).
See ``ledkde.reference`` for the plain NumPy definitions of every operation.
"""

from ._loader import _core  # noqa: F401  (loads the compiled engine and its BLAS)
from ._device import cuda_available, set_cuda_prune, set_cuda_tf32
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
from ._local import Local
from ._bandwidth import BandwidthSelection, bandwidth_rule, sample_quality, select_bandwidth, wilson_interval
from ._toolkit import (
    GaussianMixture,
    MemorizationReport,
    Neighbors,
    collapse_time,
    effective_dataset_size,
    energy_distance,
    median_nn_distance,
    memorization,
    nearest_neighbors,
    score_error_study,
)

__version__ = "0.1.0"

__all__ = [
    "BandwidthSelection",
    "bandwidth_rule",
    "sample_quality",
    "select_bandwidth",
    "wilson_interval",
    "GaussianMixture",
    "Local",
    "MemorizationReport",
    "Mixture",
    "Neighbors",
    "PassState",
    "collapse_time",
    "cuda_available",
    "set_cuda_prune",
    "set_cuda_tf32",
    "denoise",
    "effective_dataset_size",
    "energy_distance",
    "evaluate",
    "finalize",
    "led_kde_log_density",
    "log_density",
    "median_nn_distance",
    "memorization",
    "merge_states",
    "nearest_neighbors",
    "partial_state",
    "sample",
    "score",
    "score_error_study",
    "smoothed_score",
    "time_grid",
]
