"""Type stub of the private CUDA module (built when a CUDA compiler is found; use the ledkde
package with ``device="cuda"`` instead). The operations shared with the CPU module (evaluate,
partial, smoothed, sample) take a device mixture in place of a host one; see ``_core.pyi``."""

from typing import Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ._core import Mixture32, Mixture64

F64 = NDArray[np.float64]

class DeviceMixture32:
    n: int
    d: int
    device: int
    log_mass: float
    def __init__(self, host: Mixture32, device: int, logit_tol: float) -> None: ...

class DeviceMixture64:
    n: int
    d: int
    device: int
    log_mass: float
    def __init__(self, host: Mixture64, device: int, logit_tol: float) -> None: ...

_DMix = DeviceMixture32 | DeviceMixture64

class PassOptions:
    def __init__(self, threads: int, tile_q: int, tile_n: int) -> None: ...

class SmoothOptions:
    bandwidth: float
    n_kernel: int
    kernel: int
    estimator: int
    antithetic: bool
    orthogonal: bool
    seed: int
    eval: int
    def __init__(self, bandwidth: float, n_kernel: int, kernel: int, estimator: int, antithetic: bool,
                 orthogonal: bool, seed: int, eval: int = ...) -> None: ...

class SamplerConfig:
    error_slots: int
    def __init__(self, times: F64, bandwidth: F64, method: int, smooth: SmoothOptions, init: int,
                 denoise_last: bool, keep: Sequence[int]) -> None: ...

def device_count() -> int: ...
def device_name(device: int) -> str: ...
def set_tf32(enabled: bool) -> bool: ...
def tf32_enabled() -> bool: ...
def set_prune(enabled: bool) -> bool: ...
def prune_enabled() -> bool: ...
def prune_counts(reset: bool = ...) -> tuple[int, int]: ...
def evaluate(mixture: _DMix, y: NDArray, t: float, outputs: int, options: PassOptions) -> tuple[Optional[NDArray], ...]: ...
def partial(mixture: _DMix, y: NDArray, t: float, options: PassOptions) -> tuple[F64, F64, F64, F64, F64]: ...
def smoothed(mixture: _DMix, y: NDArray, t: float, smooth: SmoothOptions, want_score: bool,
             want_log_density: bool, want_errors: bool, options: PassOptions) -> tuple[Optional[NDArray], Optional[NDArray], Optional[NDArray], Optional[NDArray]]: ...
def sample(mixture: _DMix, n_samples: int, config: SamplerConfig, want_error: bool,
           progress: Optional[Callable[[int, int], None]], options: PassOptions, out_dev: int = 0,
           traj_dev: int = 0) -> tuple[Optional[NDArray], Optional[NDArray], Optional[F64]]: ...
# Device pointers (integers; 0 = output not wanted) of C-contiguous arrays of the mixture's dtype.
def evaluate_ptr(mixture: _DMix, y: int, q: int, t: float, log_density: int, score: int, denoise: int,
                 entropy: int, max_weight: int) -> None: ...
def smoothed_ptr(mixture: _DMix, y: int, q: int, t: float, bandwidth: float, n_kernel: int, kernel: int,
                 estimator: int, antithetic: bool, orthogonal: bool, seed: int, score: int, log_density: int,
                 score_se: int, log_density_se: int) -> None: ...
