"""Where a call runs: the ``device=`` argument of every compute function.

``device="auto"`` (default) runs on the GPU when an input already lives there
(a CuPy array, a PyTorch CUDA tensor, anything with ``__cuda_array_interface__``
or a CUDA DLPack capsule), else on the CPU. ``"cpu"``, ``"cuda"`` and ``"cuda:N"``
choose explicitly. GPU inputs give CuPy results; NumPy inputs give NumPy results;
other CPU arrays that speak DLPack (PyTorch CPU tensors, JAX arrays, ...) give
results of their own kind, through DLPack without a copy.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

_KDL_CUDA, _KDL_CUDA_MANAGED = 2, 13  # DLPack device types


def cuda_module():
    """The compiled CUDA backend, or None when this build has none."""
    try:
        from . import _cuda
    except ImportError:
        return None
    return _cuda


def cuda_available() -> bool:
    """True when this build has the CUDA backend and a usable CUDA device exists."""
    m = cuda_module()
    return m is not None and m.device_count() > 0


def set_cuda_tf32(enabled: bool) -> bool:
    """Opt in (or out) of TF32 tensor cores for the CUDA backend's float32 passes.

    With ``True``, the second product of every float32 GPU pass (the weighted
    sums ``sum_j p_j mu_j / v_j`` behind the score and the denoiser) runs on the
    TF32 tensor cores: inputs rounded to a 10-bit mantissa, sums in float32. The
    logits (and so log-densities, entropies and the weights themselves) stay
    exact: their products run on the float64 tensor cores either way. Measured
    on an H100 (``bench/gpu.py``): score error up to about 1e-3 of the score's
    scale instead of 1e-6. float64 data are never affected. Returns the previous
    setting; the default is ``False`` (exact float32).
    """
    return _set_cuda_switch("set_cuda_tf32", "set_tf32", enabled)


def set_cuda_prune(enabled: bool) -> bool:
    """Opt in (or out) of certified pruning in the CUDA backend's passes.

    With ``True``, a GPU pass over a Mixture that prunes on the CPU (``Mixture(...,
    prune=True)``, the default, for data without weights or variances, at least 2048
    points in at least 160 dimensions) skips the components that provably carry no
    weight, by the CPU's rule (the same projection, bound and margin: results within
    the dense pass's tolerances), and computes only the rest, exactly. It pays at small
    t; at large t a probe of the first 1024 components sends the pass to the dense
    route. Returns the previous setting. The default is ``False`` while the GPU
    implementation has not been run on a device (the CPU's pruning is on by default).
    """
    return _set_cuda_switch("set_cuda_prune", "set_prune", enabled)


def _set_cuda_switch(name: str, setter: str, enabled) -> bool:
    """A process-wide switch of the CUDA backend (``setter`` of ledkde._cuda), checked;
    returns its previous setting."""
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"enabled: expected True or False, got {type(enabled).__name__}")
    m = cuda_module()
    if m is None:
        raise RuntimeError(f"{name}: this build of ledkde has no CUDA backend")
    return bool(getattr(m, setter)(bool(enabled)))


def is_gpu_array(a) -> bool:
    if hasattr(a, "__cuda_array_interface__"):
        return True
    dev = getattr(a, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return dev()[0] in (_KDL_CUDA, _KDL_CUDA_MANAGED)
    except Exception:
        return False


def _cupy(name: str):
    try:
        import cupy
    except ImportError:
        raise TypeError(f"{name}: GPU arrays need CuPy installed (pip install cupy-cuda12x)") from None
    return cupy


def as_cupy(name: str, a):
    """A CuPy view of a GPU array (no copy): CuPy itself, anything with
    ``__cuda_array_interface__`` (PyTorch CUDA tensors, Numba, ...) or a DLPack producer."""
    cp = _cupy(name)
    if isinstance(a, cp.ndarray):
        return a
    return cp.asarray(a) if hasattr(a, "__cuda_array_interface__") else cp.from_dlpack(a)


def _device_id(a) -> int:
    dev = getattr(a, "__dlpack_device__", None)
    if dev is not None:
        return int(dev()[1])
    return int(as_cupy("array", a).device.id)


def to_host(name: str, a, on_gpu: bool | None = None):
    """A GPU array's values as a NumPy array (anything else unchanged). on_gpu: whether
    ``a`` is a GPU array, when the caller has already looked (placement's gpu_inputs)."""
    if not (is_gpu_array(a) if on_gpu is None else on_gpu):
        return a
    cp = _cupy(name)
    arr = cp.asarray(a) if hasattr(a, "__cuda_array_interface__") else cp.from_dlpack(a)
    return cp.asnumpy(arr)


_KDL_CPU = 1


def _cpu_kind(a) -> Callable | None:
    """For a CPU array that is not NumPy but speaks DLPack (a PyTorch CPU tensor, a JAX
    array, ...): the function that makes results of its kind from NumPy arrays without a
    copy (its library's from_dlpack). None for NumPy arrays and everything else."""
    if a is None or isinstance(a, np.ndarray) or not hasattr(a, "__dlpack__"):
        return None
    try:
        if a.__dlpack_device__()[0] != _KDL_CPU:
            return None
    except Exception:
        return None
    top = type(a).__module__.split(".")[0]
    if top in ("jax", "jaxlib"):
        import jax.numpy as jnp
        return jnp.from_dlpack
    return getattr(sys.modules.get(top), "from_dlpack", None)


@dataclass(frozen=True)
class Placement:
    kind: str          # "cpu" or "cuda"
    index: int         # CUDA device index
    gpu_output: bool   # return CuPy arrays
    cpu_kind: Callable | None = None  # results as the input's CPU array kind (see _cpu_kind)
    gpu_inputs: tuple = ()  # per array given to placement: whether it is a GPU array

    def module(self):
        if self.kind == "cpu":
            from ._loader import _core
            return _core
        return cuda_module()

    def output(self, value):
        """Results as CuPy arrays when the inputs were GPU arrays, as the inputs' own kind
        when they were other DLPack CPU arrays, else NumPy."""
        if value is None:
            return value
        if self.gpu_output:
            convert = _cupy("result").asarray
        elif self.kind == "cpu" and self.cpu_kind is not None:
            convert = self.cpu_kind
        else:
            return value
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return type(value)(*(convert(v) for v in value)) if hasattr(value, "_fields") else tuple(
                convert(v) for v in value)
        return convert(value)


def placement(device, *arrays) -> Placement:
    """Check ``device`` and decide where the call runs."""
    gpu_inputs = tuple(a is not None and is_gpu_array(a) for a in arrays)  # each input looked at once
    on_gpu = any(gpu_inputs)
    if not isinstance(device, str):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {type(device).__name__}")
    index = 0
    if device == "auto":
        kind = "cuda" if on_gpu else "cpu"
        if on_gpu:  # the device the (first) GPU input lives on
            index = _device_id(next(a for a, g in zip(arrays, gpu_inputs) if g))
    elif device == "cpu":
        kind = "cpu"
    elif device == "cuda" or device.startswith("cuda:"):
        kind = "cuda"
        if device != "cuda":
            try:
                index = int(device[5:])
            except ValueError:
                raise ValueError(f"device: expected 'cuda:N' with an integer N, got {device!r}") from None
    else:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if kind == "cuda":
        m = cuda_module()
        if m is None:
            raise RuntimeError("device: 'cuda' needs the CUDA backend, and this build of ledkde has none "
                               "(it is built when a CUDA compiler is found at install time)")
        count = m.device_count()
        if count == 0:
            raise RuntimeError("device: 'cuda' was asked for, but no usable CUDA device is present "
                               "(no GPU, or no NVIDIA driver)")
        if not 0 <= index < count:
            raise ValueError(f"device: cuda:{index} does not exist; {count} CUDA device(s) are present")
    cpu_kind = None if on_gpu else next((k for k in map(_cpu_kind, arrays) if k is not None), None)
    return Placement(kind, index, on_gpu, cpu_kind, gpu_inputs)
