// Host interface of the CUDA backend (plain C++: no CUDA or pybind11 types).
// The bindings (bindings/cuda_module.cpp) call these; the kernels live in
// the .cu files beside this header. All arrays here are host (NumPy) memory
// unless a name ends in _dev; results are copied back before returning.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ledkde/engine.h"

namespace ledkde::cuda {

int device_count();          // 0 when there is no driver or no device

// Opt-in TF32 mode for float data: the weighted sums P M (the second product
// of a pass) run on the TF32 tensor cores. The logits' products stay exact
// (float64 tensor cores). Returns the previous setting.
bool set_tf32(bool enabled);
bool tf32_enabled();

// Opt-in certified pruning of the GPU pass at small t (prune_cuda.cu, the
// CPU's rule and the Mixture's projection): off by default until it has run
// on a device. Returns the previous setting.
bool set_prune(bool enabled);
bool prune_enabled();
// The components the GPU's pruned passes considered and the distances they
// computed (cpu.h prune_counts for the GPU); reset: set both to zero after.
void gpu_prune_counts(int64_t* considered, int64_t* computed, bool reset);
std::string device_name(int device);

// A prepared Mixture (centred components, weights, variances) resident on one
// device; built from the host Mixture, freed with the object.
template <class T>
class DeviceMixture {
 public:
  // logit_tol: the device pass's Mixture::logit_tol (0: 64 eps of T); the
  // Python layer passes the host's only where the user asked for it.
  DeviceMixture(const Mixture<T>& host, int device, double logit_tol);
  ~DeviceMixture();
  DeviceMixture(const DeviceMixture&) = delete;
  DeviceMixture& operator=(const DeviceMixture&) = delete;

  int64_t n = 0, d = 0;
  int device = 0;
  double log_mass = 0.0;
  bool has_weights = false, has_variances = false;
  T* mu_dev = nullptr;          // (n, d) centred
  double* norm2_dev = nullptr;   // (n,) |mu_j|^2 of the centred components, in float64
  double* centre_dev = nullptr;  // (d,)
  double* logw_dev = nullptr;    // (n,) normalized, or null (uniform)
  double* var_dev = nullptr;     // (n,) or null (empirical)
  std::vector<double> centre;    // host copy
  // The certified pruning's projection (engine.h Projection), when the host
  // Mixture has one (proj_k = 0: none).
  int64_t proj_k = 0;
  double* basis_dev = nullptr;   // (k, d) orthonormal rows
  float* z_dev = nullptr;        // (n, k) P mu_j
  float* zn2_dev = nullptr;      // (n,) |P mu_j|^2
  float* zn2p_dev = nullptr;     // (n,) the same over the first k / 2 coordinates
  float* resid_dev = nullptr;    // (n,) r(mu_j)
  // Host copy of what the per-call logit constants need (n, d, norm2_max,
  // weights, variances; no components): make_logit_params(params, t).
  Mixture<T> params;
};

// Fused pass (cpu.h evaluate_cpu): y (q, d) host; outputs host, null = not wanted.
template <class T>
void evaluate_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, PassOutputs<T> out);

// The same with y and the outputs in device memory of mix.device (CuPy,
// PyTorch or any __cuda_array_interface__ / DLPack producer): nothing is
// copied to the host.
template <class T>
void evaluate_device(const DeviceMixture<T>& mix, const T* y_dev, int64_t q, double t, PassOutputs<T> out_dev);

// Smoothed score / LED-KDE log-density with y and outputs in device memory.
template <class T>
void smoothed_device(const DeviceMixture<T>& mix, const T* y_dev, int64_t q, double t, const SmoothOptions& sm,
                     SmoothOutputs<T> out_dev);

// Partial states (cpu.h partial_cpu), for merging across devices.
template <class T>
void partial_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, PartialState out);

// Smoothed score and LED-KDE log-density (cpu.h smoothed_cpu).
template <class T>
void smoothed_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t,
                   const SmoothOptions& sm, SmoothOutputs<T> out);

// A whole run (cpu.h sample_cpu); the step loop stays on the device, the
// host only launches kernels and polls between steps. on_device: out and
// trajectory are device memory of mix.device (else host memory). mc_error:
// host memory, as in sample_cpu.
template <class T>
bool sample_cuda(const DeviceMixture<T>& mix, int64_t n_samples, const SamplerConfig& cfg, T* out,
                 T* trajectory, const PollFn& poll, bool on_device = false, double* mc_error = nullptr);

}  // namespace ledkde::cuda
