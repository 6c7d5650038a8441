"""Type stub of the private compiled module (use the ledkde package instead)."""

from typing import Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

class Mixture32:
    n: int
    d: int
    log_mass: float
    norm2_max: float
    resolution: float
    centre: F64
    projection_k: int
    logit_tol: float
    def set_projection(self, basis: F64, threads: int) -> None: ...

class Mixture64:
    n: int
    d: int
    log_mass: float
    norm2_max: float
    resolution: float
    centre: F64
    projection_k: int
    logit_tol: float
    def set_projection(self, basis: F64, threads: int) -> None: ...

_Mix = Mixture32 | Mixture64

PURPOSE_NOISE: int
PURPOSE_INIT_NOISE: int
PURPOSE_INIT_INDEX: int
PURPOSE_KERNEL: int
OUT_LOG_DENSITY: int
OUT_SCORE: int
OUT_DENOISE: int
OUT_ENTROPY: int
OUT_MAX_WEIGHT: int

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

def prepare(data: NDArray, log_weights: Optional[F64], variances: Optional[F64], threads: int,
            pack: bool = ...) -> _Mix: ...
def evaluate(mixture: _Mix, y: NDArray, t: float, outputs: int, options: PassOptions) -> tuple[Optional[NDArray], ...]: ...
def partial(mixture: _Mix, y: NDArray, t: float, options: PassOptions) -> tuple[F64, F64, F64, F64, F64]: ...
def denoise_vjp(points: NDArray, log_weights: Optional[F64], centre: F64, y: F64, v: F64, t: float,
                options: PassOptions) -> tuple[F64, F64]: ...
def knn(mixture: _Mix, y: NDArray, k: int, options: PassOptions) -> tuple[NDArray, NDArray]: ...
def merge_states(m1: F64, S1: F64, E1: F64, A1: F64, m2: F64, S2: F64, E2: F64,
                 A2: F64, B1: Optional[F64] = ..., B2: Optional[F64] = ...) -> tuple[F64, F64, F64, F64, Optional[F64]]: ...
def finalize_state(m: F64, S: F64, E: F64, A: F64) -> tuple[F64, F64, F64, F64]: ...
def prune_counts(reset: bool = ...) -> tuple[int, int]: ...
def smoothed(mixture: _Mix, y: NDArray, t: float, smooth: SmoothOptions, want_score: bool,
             want_log_density: bool, want_errors: bool, options: PassOptions) -> tuple[Optional[NDArray], Optional[NDArray], Optional[NDArray], Optional[NDArray]]: ...
def sample(mixture: _Mix, n_samples: int, config: SamplerConfig, want_error: bool,
           progress: Optional[Callable[[int, int], None]], options: PassOptions, out_dev: int = 0,
           traj_dev: int = 0) -> tuple[Optional[NDArray], Optional[NDArray], Optional[F64]]: ...
def kernel_draws(seed: int, index: int, eval: int, n_kernel: int, antithetic: bool, orthogonal: bool,
                 kernel: int, bandwidth: float, d: int) -> F64: ...
TILE_GEMM_ISA: str
ROW_KERNELS_ISA: str

def stream_normals(seed: int, index: int, step: int, purpose: int, draw: int, d: int) -> F64: ...

# The compiled smoothed estimators and sampler over a pass run elsewhere (ledkde.distributed).
class RemoteSource32:
    def __init__(self, n: int, d: int, log_mass: float, log_weights: Optional[F64], variances: Optional[F64],
                 pass_: Callable[[NDArray, float], tuple[F64, F64, F64, F64, F64]],
                 points: Callable[[NDArray], F64]) -> None: ...
    def smoothed(self, y: NDArray, t: float, smooth: SmoothOptions, want_score: bool, want_log_density: bool,
                 want_errors: bool, options: PassOptions) -> tuple[Optional[NDArray], ...]: ...
    def sample(self, n_samples: int, config: SamplerConfig, want_error: bool,
               progress: Optional[Callable[[int, int], None]],
               options: PassOptions) -> tuple[NDArray, Optional[NDArray], Optional[F64]]: ...

class RemoteSource64:
    def __init__(self, n: int, d: int, log_mass: float, log_weights: Optional[F64], variances: Optional[F64],
                 pass_: Callable[[NDArray, float], tuple[F64, F64, F64, F64, F64]],
                 points: Callable[[NDArray], F64]) -> None: ...
    def smoothed(self, y: NDArray, t: float, smooth: SmoothOptions, want_score: bool, want_log_density: bool,
                 want_errors: bool, options: PassOptions) -> tuple[Optional[NDArray], ...]: ...
    def sample(self, n_samples: int, config: SamplerConfig, want_error: bool,
               progress: Optional[Callable[[int, int], None]],
               options: PassOptions) -> tuple[NDArray, Optional[NDArray], Optional[F64]]: ...
def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> list[int]: ...
