// pybind11 bindings of the CUDA backend: the private module ledkde._cuda,
// built only when CMake finds a CUDA compiler. The kernels are in cuda/*.cu
// (no pybind11 there); this file binds the same operations as the CPU module
// through bind_ops.h, plus the devices and the device-resident mixtures.
#include "bind_ops.h"
#include "cuda_api.h"

namespace py = pybind11;
using namespace ledkde;
using namespace ledkde::bind;

namespace {

// The CUDA backend for bind_ops (threads and tiles do not apply on the GPU).
template <class T>
struct CudaBackend {
  using Scalar = T;
  using Mix = cuda::DeviceMixture<T>;
  static void evaluate(const Mix& mix, const T* y, int64_t q, double t, PassOutputs<T> o,
                       const PassOptions&) {
    cuda::evaluate_cuda<T>(mix, y, q, t, o);
  }
  static void partial(const Mix& mix, const T* y, int64_t q, double t, PartialState s,
                      const PassOptions&) {
    cuda::partial_cuda<T>(mix, y, q, t, s);
  }
  static void smoothed(const Mix& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                       SmoothOutputs<T> out, const PassOptions&) {
    cuda::smoothed_cuda<T>(mix, y, q, t, sm, out);
  }
  static constexpr bool kDeviceOutput = true;
  static bool sample(const Mix& mix, int64_t n, const SamplerConfig& cfg, T* out, T* traj,
                     const PassOptions&, const PollFn& poll, bool on_device, double* mc_error) {
    return cuda::sample_cuda<T>(mix, n, cfg, out, traj, poll, on_device, mc_error);
  }
};

template <class T>
void bind_dtype(py::module_& m, const char* name) {
  // Built from a prepared host mixture of ledkde._core (Mixture32 / Mixture64).
  py::class_<cuda::DeviceMixture<T>>(m, name)
      .def(py::init([](const Mixture<T>& host, int device, double logit_tol) {
             py::gil_scoped_release release;
             return std::make_unique<cuda::DeviceMixture<T>>(host, device, logit_tol);
           }),
           py::arg("host"), py::arg("device"), py::arg("logit_tol"))
      .def_readonly("n", &cuda::DeviceMixture<T>::n)
      .def_readonly("d", &cuda::DeviceMixture<T>::d)
      .def_readonly("device", &cuda::DeviceMixture<T>::device)
      .def_readonly("log_mass", &cuda::DeviceMixture<T>::log_mass);
  bind_ops<CudaBackend<T>>(m);
  // Device-memory entry points (zero copy): y and outputs are device
  // pointers (integers, 0 = output not wanted) of arrays the Python layer has
  // checked: C-contiguous, dtype T, shapes (q, d) / (q,), on mix.device.
  m.def(
      "evaluate_ptr",
      [](const cuda::DeviceMixture<T>& mix, uintptr_t y, int64_t q, double t, uintptr_t log_density,
         uintptr_t score, uintptr_t denoise, uintptr_t entropy, uintptr_t max_weight) {
        auto p = [](uintptr_t a) { return reinterpret_cast<T*>(a); };
        PassOutputs<T> o{p(log_density), p(score), p(denoise), p(entropy), p(max_weight)};
        py::gil_scoped_release release;
        cuda::evaluate_device<T>(mix, p(y), q, t, o);
      },
      py::arg("mixture"), py::arg("y"), py::arg("q"), py::arg("t"), py::arg("log_density"), py::arg("score"),
      py::arg("denoise"), py::arg("entropy"), py::arg("max_weight"));
  m.def(
      "smoothed_ptr",
      [](const cuda::DeviceMixture<T>& mix, uintptr_t y, int64_t q, double t, double bandwidth, int64_t n_kernel,
         int kernel, int estimator, bool antithetic, bool orthogonal, uint64_t seed, uintptr_t score,
         uintptr_t log_density, uintptr_t score_se, uintptr_t log_density_se) {
        const SmoothOptions sm =
            smooth_options(bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, 0);
        auto p = [](uintptr_t a) { return reinterpret_cast<T*>(a); };
        SmoothOutputs<T> o{p(score), p(log_density), p(score_se), p(log_density_se)};
        py::gil_scoped_release release;
        cuda::smoothed_device<T>(mix, reinterpret_cast<const T*>(y), q, t, sm, o);
      },
      py::arg("mixture"), py::arg("y"), py::arg("q"), py::arg("t"), py::arg("bandwidth"), py::arg("n_kernel"),
      py::arg("kernel"), py::arg("estimator"), py::arg("antithetic"), py::arg("orthogonal"), py::arg("seed"),
      py::arg("score"), py::arg("log_density"), py::arg("score_se"), py::arg("log_density_se"));
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "ledkde CUDA backend (private; use the ledkde package with device='cuda').";
  py::module_::import("ledkde._core");  // the host Mixture types the device mixtures are built from
  m.def("device_count", &cuda::device_count);
  m.def("device_name", &cuda::device_name, py::arg("device"));
  m.def("set_tf32", &cuda::set_tf32, py::arg("enabled"));
  m.def("tf32_enabled", &cuda::tf32_enabled);
  m.def("set_prune", &cuda::set_prune, py::arg("enabled"));
  m.def("prune_enabled", &cuda::prune_enabled);
  m.def(
      "prune_counts",
      [](bool reset) {
        int64_t considered = 0, computed = 0;
        cuda::gpu_prune_counts(&considered, &computed, reset);
        return py::make_tuple(considered, computed);
      },
      py::arg("reset") = false);
  bind_options(m);
  bind_dtype<float>(m, "DeviceMixture32");
  bind_dtype<double>(m, "DeviceMixture64");
}
