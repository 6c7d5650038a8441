// Bindings of the local denoisers (cpp/src/local_cpu.h): the prepared
// training images, their denoiser and score, and whole sampler runs over them
// (the compiled sampler on a LocalSource). Arguments checked by
// python/ledkde/_local.py; shapes checked here. No mathematics here.
#pragma once

#include "bind_ops.h"
#include "local_source.h"
#include "row_source.h"

namespace ledkde::bind {

inline void bind_local_spec(py::module_& m) {
  py::class_<LocalSpec>(m, "LocalSpec", py::module_local())
      .def(py::init([](int64_t patch, bool equivariant, int padding, bool merge) {
             if (patch < 1 || patch % 2 == 0) throw std::invalid_argument("patch: an odd size >= 1");
             if (padding < kPadZero || padding > kPadBoundary) throw std::invalid_argument("padding: 0, 1 or 2");
             return LocalSpec{patch, equivariant, padding, merge};
           }),
           py::arg("patch"), py::arg("equivariant"), py::arg("padding"), py::arg("merge"))
      .def_readonly("patch", &LocalSpec::patch);
}

template <class T>
void bind_local(py::module_& m, const char* name) {
  using L = LocalImages<T>;
  py::class_<L>(m, name)
      .def(py::init([](CArray<T> data, int64_t h, int64_t w, int64_t c, std::optional<F64> log_weights,
                       bool interleave) {
             if (data.ndim() != 2 || data.shape(1) != h * w * c)
               throw std::invalid_argument("data: expected (n, h w c) rows");
             if (log_weights && log_weights->size() != data.shape(0))
               throw std::invalid_argument("log_weights: expected (n,)");
             const T* p = data.data();
             const double* lw = log_weights ? log_weights->data() : nullptr;
             py::gil_scoped_release release;
             return prepare_local<T>(p, data.shape(0), h, w, c, lw, interleave);
           }),
           py::arg("data"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("log_weights"), py::arg("interleave"))
      .def_readonly("n", &L::n)
      .def_property_readonly("d", &L::d)
      .def(
          "denoise",
          [](const L& img, CArray<T> y, double t, const LocalSpec& spec, PassOptions po) {
            check_rows("y", y, img.d());
            const py::ssize_t q = y.shape(0), d = y.shape(1);
            std::vector<double> D(static_cast<size_t>(q * d));
            const T* py_ = y.data();
            Interrupt().run(po, [&] { local_denoise_cpu<T>(img, spec, py_, q, t, D.data(), po); });
            CArray<T> den({q, d}), sc({q, d});
            T *pd = den.mutable_data(), *ps = sc.mutable_data();
            for (py::ssize_t e = 0; e < q * d; ++e) {
              pd[e] = static_cast<T>(D[e]);
              ps[e] = static_cast<T>((D[e] - static_cast<double>(py_[e])) / t);
            }
            return py::make_tuple(den, sc);
          },
          py::arg("y"), py::arg("t"), py::arg("spec"), py::arg("options"))
      .def(
          "sample",
          [](const L& img, int64_t n_samples, const SamplerConfig& cfg, const LocalSpec& spec,
             std::vector<int64_t> patches, bool want_error, py::object progress, const PassOptions& po) {
            if (patches.size() != cfg.times.size()) throw std::invalid_argument("patches: one per grid time");
            for (int64_t p : patches)
              if (p < 1 || p % 2 == 0) throw std::invalid_argument("patches: odd sizes >= 1");
            const LocalSource<T> src(img, spec, cfg.times, std::move(patches));
            SampleArrays<T> a(n_samples, img.d(), cfg, want_error);
            Progress prog(progress);
            {
              py::gil_scoped_release release;
              sample_source(src, n_samples, cfg, a.out, a.traj, po, prog.poll(), a.err);
            }
            prog.raise_failure();
            return a.result();
          },
          py::arg("n_samples"), py::arg("config"), py::arg("spec"), py::arg("patches"), py::arg("want_error"),
          py::arg("progress"), py::arg("options"));
}

}  // namespace ledkde::bind
