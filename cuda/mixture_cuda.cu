// Devices, and a prepared Mixture made resident on one of them.
#include "pass_cuda.cuh"

namespace ledkde::cuda {

int device_count() {
  int n = 0;
  // No driver or no device: report none rather than fail.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

template <class T>
DeviceMixture<T>::DeviceMixture(const Mixture<T>& host, int dev, double logit_tol)
    : n(host.n), d(host.d), device(dev), log_mass(host.log_mass), has_weights(!host.logw.empty()),
      has_variances(!host.var.empty()), centre(host.centre) {
  check(cudaSetDevice(dev), "cudaSetDevice");
  auto put = [](const auto& vec, auto** dst) {
    using U = typename std::decay_t<decltype(vec)>::value_type;
    if (vec.empty()) return;
    check(cudaMalloc(dst, vec.size() * sizeof(U)), "cudaMalloc");
    check(cudaMemcpy(*dst, vec.data(), vec.size() * sizeof(U), cudaMemcpyHostToDevice), "upload");
  };
  put(host.mu, &mu_dev);
  // The norms in float64 from the stored components (the host keeps them in T).
  std::vector<double> norm2(static_cast<size_t>(n), 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < d; ++k) {
      const double v = static_cast<double>(host.mu[j * d + k]);
      norm2[j] += v * v;
    }
  put(norm2, &norm2_dev);
  params.n = host.n;
  params.d = host.d;
  params.norm2_max = host.norm2_max;
  params.logit_tol = logit_tol;
  params.logw = host.logw;
  params.var = host.var;
  put(host.centre, &centre_dev);
  put(host.logw, &logw_dev);
  put(host.var, &var_dev);
  if (!host.proj.empty()) {
    proj_k = host.proj.k;
    put(host.proj.basis, &basis_dev);
    put(host.proj.z, &z_dev);
    put(host.proj.zn2f, &zn2_dev);
    put(host.proj.zn2_prefix, &zn2p_dev);
    put(host.proj.residf, &resid_dev);
  }
}

template <class T>
DeviceMixture<T>::~DeviceMixture() {
  for (void* p : {static_cast<void*>(mu_dev), static_cast<void*>(norm2_dev), static_cast<void*>(centre_dev),
                  static_cast<void*>(logw_dev), static_cast<void*>(var_dev), static_cast<void*>(basis_dev),
                  static_cast<void*>(z_dev), static_cast<void*>(zn2_dev), static_cast<void*>(zn2p_dev),
                  static_cast<void*>(resid_dev)})
    if (p) cudaFree(p);
}

template class DeviceMixture<float>;
template class DeviceMixture<double>;

}  // namespace ledkde::cuda
