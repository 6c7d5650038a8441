// The compiled drivers over data held elsewhere (ledkde.distributed): a
// RemoteSource (cpp/src/row_source.h) whose pass and points are Python
// functions, so that the sampler's steps and the smoothed estimators over
// sharded data are the engine's own (sampler_cpu.cpp, smoothed_cpu.cpp), not
// a second copy. The functions run with the GIL taken back; an exception they
// raise stops the call and is raised again from it. No mathematics here.
#pragma once

#include <memory>

#include "bind_ops.h"
#include "row_source.h"

namespace ledkde::bind {

// A RemoteSource and the first Python error its functions raised.
template <class T>
struct PyRemote {
  RemoteSource<T> src;
  std::shared_ptr<std::optional<py::error_already_set>> failure =
      std::make_shared<std::optional<py::error_already_set>>();

  // Raises the stored Python error, if any (with the GIL held).
  void raise_failure() {
    if (*failure) {
      py::error_already_set e = std::move(**failure);
      failure->reset();
      throw e;
    }
  }
};

// Calls f with the GIL taken; a Python error is stored in `failure` and the
// engine's call is cancelled.
template <class F>
void call_python(const std::shared_ptr<std::optional<py::error_already_set>>& failure, F&& f) {
  py::gil_scoped_acquire acquire;
  try {
    f();
  } catch (py::error_already_set& e) {
    if (!*failure) failure->emplace(std::move(e));
    throw Cancelled();
  }
}

// The (rows, d) float64 array `a` returned by a remote function, checked.
inline const double* checked_f64(const F64& a, int64_t rows, int64_t d, const char* what) {
  if ((d == 0 ? a.ndim() != 1 : a.ndim() != 2) || a.shape(0) != rows || (d > 0 && a.shape(1) != d))
    throw std::invalid_argument(std::string("remote pass: ") + what + " has the wrong shape");
  return a.data();
}

template <class T>
std::unique_ptr<PyRemote<T>> make_remote(int64_t n, int64_t d, double log_mass, std::optional<F64> log_weights,
                                         std::optional<F64> variances, py::function pass, py::function points) {
  auto r = std::make_unique<PyRemote<T>>();
  RemoteSource<T>& s = r->src;
  s.n_ = n;
  s.d_ = d;
  s.log_mass = log_mass;
  if (log_weights) {
    if (log_weights->size() != n) throw std::invalid_argument("log_weights: expected (n,)");
    s.logw.assign(log_weights->data(), log_weights->data() + n);
  }
  if (variances) {
    if (variances->size() != n) throw std::invalid_argument("variances: expected (n,)");
    s.var.assign(variances->data(), variances->data() + n);
  }
  s.zero.assign(static_cast<size_t>(d), 0.0);
  auto failure = r->failure;
  s.pass = [pass, failure, d](const T* rows, int64_t q, double t, PartialState out) {
    call_python(failure, [&] {
      CArray<T> y({static_cast<py::ssize_t>(q), static_cast<py::ssize_t>(d)});
      std::copy(rows, rows + q * d, y.mutable_data());
      py::tuple st = pass(y, t);
      if (st.size() != 5) throw std::invalid_argument("remote pass: expected (m, S, E, A, B)");
      const F64 m = st[0].cast<F64>(), S = st[1].cast<F64>(), E = st[2].cast<F64>(), A = st[3].cast<F64>();
      std::copy_n(checked_f64(m, q, 0, "m"), q, out.m);
      std::copy_n(checked_f64(S, q, 0, "S"), q, out.S);
      std::copy_n(checked_f64(E, q, 0, "E"), q, out.E);
      std::copy_n(checked_f64(A, q, d, "A"), q * d, out.A);
      if (out.B) std::copy_n(checked_f64(st[4].cast<F64>(), q, 0, "B"), q, out.B);
    });
  };
  s.fetch = [points, failure, d](const int64_t* index, int64_t count, double* out) {
    call_python(failure, [&] {
      py::array_t<int64_t> idx(static_cast<py::ssize_t>(count));
      std::copy(index, index + count, idx.mutable_data());
      const F64 rows = points(idx).template cast<F64>();
      std::copy_n(checked_f64(rows, count, d, "points"), count * d, out);
    });
  };
  return r;
}

template <class T>
void bind_remote(py::module_& m, const char* name) {
  using R = PyRemote<T>;
  py::class_<R>(m, name)
      .def(py::init(&make_remote<T>), py::arg("n"), py::arg("d"), py::arg("log_mass"), py::arg("log_weights"),
           py::arg("variances"), py::arg("pass_"), py::arg("points"))
      .def(
          "smoothed",
          [](R& r, CArray<T> y, double t, const SmoothOptions& sm, bool want_score, bool want_ld, bool want_errors,
             PassOptions po) {
            check_rows("y", y, r.src.d());
            const py::ssize_t q = y.shape(0);
            SmoothArrays<T> a(q, y.shape(1), want_score, want_ld, want_errors);
            const T* py_ = y.data();
            try {
              Interrupt().run(po, [&] { smoothed_remote<T>(r.src, py_, q, t, sm, a.o, po); });
            } catch (...) {
              r.raise_failure();
              throw;
            }
            return a.result();
          },
          py::arg("y"), py::arg("t"), py::arg("smooth"), py::arg("want_score"), py::arg("want_log_density"),
          py::arg("want_errors"), py::arg("options"))
      .def(
          "sample",
          [](R& r, int64_t n_samples, const SamplerConfig& cfg, bool want_error, py::object progress,
             const PassOptions& po) {
            SampleArrays<T> a(n_samples, r.src.d(), cfg, want_error);
            Progress prog(progress);
            bool finished;
            {
              py::gil_scoped_release release;
              finished = sample_source(r.src, n_samples, cfg, a.out, a.traj, po, prog.poll(), a.err);
            }
            r.raise_failure();
            prog.raise_failure();
            if (!finished) throw std::runtime_error("the run was cancelled");
            return a.result();
          },
          py::arg("n_samples"), py::arg("config"), py::arg("want_error"), py::arg("progress"), py::arg("options"));
}

}  // namespace ledkde::bind
