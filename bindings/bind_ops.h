// The operations every backend binds the same way: evaluate, partial,
// smoothed, sample. A backend B supplies the mixture type B::Mix and static
// functions with the CPU signatures (ledkde/cpu.h); the CPU module (cpu_module.cpp) and
// the CUDA module (cuda_module.cpp) both call bind_ops<B>, so the argument
// handling exists once. Thin on purpose: every argument was validated by
// python/ledkde/_checks.py, arrays arrive C-contiguous in the working dtype,
// and each kernel runs with the GIL released. No mathematics here.
#pragma once

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "ledkde/engine.h"

namespace ledkde::bind {

namespace py = pybind11;

template <class T>
using CArray = py::array_t<T, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;

inline PassOptions pass_options(int threads, int64_t tile_q, int64_t tile_n) {
  PassOptions o;
  o.threads = threads;
  o.tile_q = tile_q;
  o.tile_n = tile_n;
  return o;
}

// The kernel-smoothing options of a call.
inline SmoothOptions smooth_options(double bandwidth, int64_t n_kernel, int kernel, int estimator,
                                    bool antithetic, bool orthogonal, uint64_t seed, uint32_t eval) {
  SmoothOptions sm;
  sm.bandwidth = bandwidth;
  sm.n_kernel = n_kernel;
  sm.kernel = kernel;
  sm.estimator = estimator;
  sm.antithetic = antithetic;
  sm.orthogonal = orthogonal;
  sm.seed = seed;
  sm.eval = eval;
  return sm;
}

// Ctrl-C for a call that runs with the GIL released: the pass asks check()
// every 20 ms from the calling thread (parallel_for), which takes the GIL and
// looks for a signal; run() raises what the signal handler raised.
struct Interrupt {
  std::optional<py::error_already_set> failure;

  std::function<bool()> check() {
    return [this]() {
      py::gil_scoped_acquire acquire;
      if (PyErr_CheckSignals() == 0) return false;
      failure.emplace();  // takes the pending Python error (KeyboardInterrupt)
      return true;
    };
  }

  // Runs f with the GIL released and the options' interrupt set.
  template <class F>
  void run(PassOptions& opt, F&& f) {
    opt.interrupted = check();
    bool cancelled = false;
    {
      py::gil_scoped_release release;
      try {
        f();
      } catch (const Cancelled&) {
        cancelled = true;
      }
    }
    if (failure) throw std::move(*failure);
    if (cancelled) throw std::runtime_error("the call was cancelled");
  }
};

// Every compiled entry point checks the shapes it reads itself (a wrong
// shape must never reach a kernel, whoever calls): `name` must be a 2-D
// array of rows of width d.
template <class A>
void check_rows(const char* name, const A& a, int64_t d) {
  if (a.ndim() != 2 || a.shape(1) != d)
    throw std::invalid_argument(std::string(name) + ": expected a 2-D array of rows of width " + std::to_string(d));
}

// The poll function of a sampler run: runs on the calling thread with the GIL
// released; takes the GIL to look for Ctrl-C and to report progress
// (`progress(done, total)`, or None). Never throws into the engine: an error
// of the progress function (or Ctrl-C) stops the run and is raised by
// raise_failure, even when the run had finished when it came (the last
// report follows the last step).
struct Progress {
  py::object progress;
  std::optional<py::error_already_set> failure;

  explicit Progress(py::object p) : progress(std::move(p)) {}
  PollFn poll() {
    return [this](int64_t done, int64_t total) {
      py::gil_scoped_acquire acquire;
      try {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (!progress.is_none()) progress(done, total);
        return true;
      } catch (py::error_already_set& e) {
        failure.emplace(std::move(e));
        return false;
      }
    };
  }
  void raise_failure() {
    if (failure) throw std::move(*failure);
  }
};

// A new array of the given shape (its data pointer in *ptr), or None.
template <class T>
py::object maybe(bool want, std::vector<py::ssize_t> shape, T** ptr) {
  if (!want) {
    *ptr = nullptr;
    return py::none();
  }
  CArray<T> a(shape);
  *ptr = a.mutable_data();
  return std::move(a);
}

// The outputs of a smoothed call: the arrays (score or log-density, and their
// errors; None where not wanted) and the pointers the engine writes.
template <class T>
struct SmoothArrays {
  SmoothOutputs<T> o;
  py::object sc, ld, sse, lse;
  SmoothArrays(py::ssize_t q, py::ssize_t d, bool want_score, bool want_ld, bool want_errors)
      : sc(maybe<T>(want_score, {q, d}, &o.score)), ld(maybe<T>(want_ld, {q}, &o.log_density)),
        sse(maybe<T>(want_score && want_errors, {q}, &o.score_se)),
        lse(maybe<T>(want_ld && want_errors, {q}, &o.log_density_se)) {}
  py::tuple result() const { return py::make_tuple(sc, ld, sse, lse); }
};

// The outputs of a sampler run on the host: the samples, the kept states
// (None without keep) and the Monte Carlo errors (None unless wanted).
template <class T>
struct SampleArrays {
  T *out = nullptr, *traj = nullptr;
  double* err = nullptr;
  py::object out_a, traj_a, err_a;
  SampleArrays(int64_t n_samples, py::ssize_t d, const SamplerConfig& cfg, bool want_error)
      : out_a(maybe<T>(true, {static_cast<py::ssize_t>(n_samples), d}, &out)),
        traj_a(maybe<T>(!cfg.keep.empty(),
                        {static_cast<py::ssize_t>(cfg.keep.size()), static_cast<py::ssize_t>(n_samples), d}, &traj)),
        err_a(maybe<double>(want_error, {static_cast<py::ssize_t>(cfg.error_slots())}, &err)) {}
  py::tuple result() const { return py::make_tuple(out_a, traj_a, err_a); }
};

// The options of a call, built once by the Python layer and handed over
// whole (instead of a dozen positional numbers per function). Bound once per
// module and local to it: the CPU and the CUDA module each have their own.
inline void bind_options(py::module_& m) {
  py::class_<PassOptions>(m, "PassOptions", py::module_local())
      .def(py::init(&pass_options), py::arg("threads"), py::arg("tile_q"), py::arg("tile_n"));
  py::class_<SmoothOptions>(m, "SmoothOptions", py::module_local())
      .def(py::init(&smooth_options), py::arg("bandwidth"), py::arg("n_kernel"), py::arg("kernel"),
           py::arg("estimator"), py::arg("antithetic"), py::arg("orthogonal"), py::arg("seed"),
           py::arg("eval") = 0)
      .def_readonly("bandwidth", &SmoothOptions::bandwidth)
      .def_readonly("n_kernel", &SmoothOptions::n_kernel)
      .def_readonly("kernel", &SmoothOptions::kernel)
      .def_readonly("estimator", &SmoothOptions::estimator)
      .def_readonly("antithetic", &SmoothOptions::antithetic)
      .def_readonly("orthogonal", &SmoothOptions::orthogonal)
      .def_readonly("seed", &SmoothOptions::seed)
      .def_readonly("eval", &SmoothOptions::eval);
  py::class_<SamplerConfig>(m, "SamplerConfig", py::module_local())
      .def(py::init([](std::vector<double> times, std::vector<double> bandwidth, int method,
                       const SmoothOptions& smooth, int init, bool denoise_last, std::vector<int64_t> keep) {
             if (times.size() < 2) throw std::invalid_argument("times: a grid of at least 2 times");
             if (bandwidth.size() != times.size())
               throw std::invalid_argument("bandwidth: one value per grid time");
             for (int64_t k : keep)
               if (k < 0 || k >= static_cast<int64_t>(times.size()))
                 throw std::invalid_argument("keep: grid indices in [0, steps]");
             SamplerConfig cfg;
             cfg.times = std::move(times);
             cfg.bandwidth = std::move(bandwidth);
             cfg.method = method;
             cfg.smooth = smooth;
             cfg.init = init;
             cfg.denoise_last = denoise_last;
             cfg.keep = std::move(keep);
             return cfg;
           }),
           py::arg("times"), py::arg("bandwidth"), py::arg("method"), py::arg("smooth"), py::arg("init"),
           py::arg("denoise_last"), py::arg("keep"))
      .def_property_readonly("error_slots", &SamplerConfig::error_slots);
}

template <class B, class T = typename B::Scalar>
void bind_ops(py::module_& m) {
  m.def(
      "evaluate",
      [](const typename B::Mix& mix, CArray<T> y, double t, unsigned outputs, PassOptions po) {
        check_rows("y", y, mix.d);
        const py::ssize_t q = y.shape(0), d = y.shape(1);
        PassOutputs<T> o;
        py::object ld = maybe<T>(outputs & kOutLogDensity, {q}, &o.log_density);
        py::object sc = maybe<T>(outputs & kOutScore, {q, d}, &o.score);
        py::object dn = maybe<T>(outputs & kOutDenoise, {q, d}, &o.denoise);
        py::object en = maybe<T>(outputs & kOutEntropy, {q}, &o.entropy);
        py::object mw = maybe<T>(outputs & kOutMaxWeight, {q}, &o.max_weight);
        const T* py_ = y.data();
        Interrupt().run(po, [&] { B::evaluate(mix, py_, q, t, o, po); });
        return py::make_tuple(ld, sc, dn, en, mw);
      },
      py::arg("mixture"), py::arg("y"), py::arg("t"), py::arg("outputs"), py::arg("options"));

  m.def(
      "partial",
      [](const typename B::Mix& mix, CArray<T> y, double t, PassOptions po) {
        check_rows("y", y, mix.d);
        const py::ssize_t q = y.shape(0), d = y.shape(1);
        F64 mm({q}), S({q}), E({q}), A({q, d}), Bv({q});
        PartialState st{mm.mutable_data(), S.mutable_data(), E.mutable_data(), A.mutable_data(), Bv.mutable_data()};
        const T* py_ = y.data();
        Interrupt().run(po, [&] { B::partial(mix, py_, q, t, st, po); });
        return py::make_tuple(mm, S, E, A, Bv);
      },
      py::arg("mixture"), py::arg("y"), py::arg("t"), py::arg("options"));

  m.def(
      "smoothed",
      [](const typename B::Mix& mix, CArray<T> y, double t, const SmoothOptions& sm, bool want_score,
         bool want_ld, bool want_errors, PassOptions po) {
        check_rows("y", y, mix.d);
        const py::ssize_t q = y.shape(0);
        SmoothArrays<T> a(q, y.shape(1), want_score, want_ld, want_errors);
        const T* py_ = y.data();
        Interrupt().run(po, [&] { B::smoothed(mix, py_, q, t, sm, a.o, po); });
        return a.result();
      },
      py::arg("mixture"), py::arg("y"), py::arg("t"), py::arg("smooth"), py::arg("want_score"),
      py::arg("want_log_density"), py::arg("want_errors"), py::arg("options"));

  m.def(
      "sample",
      [](const typename B::Mix& mix, int64_t n_samples, const SamplerConfig& cfg, bool want_error,
         py::object progress, const PassOptions& po, uintptr_t out_dev, uintptr_t traj_dev) {
        // out_dev / traj_dev: device arrays (CuPy) to write into instead of
        // new NumPy arrays (CUDA backend only; the Python layer allocates and
        // checks them).
        const bool on_device = out_dev != 0;
        if (on_device && !B::kDeviceOutput)
          throw std::invalid_argument("out: device outputs need the CUDA backend");
        const py::ssize_t d = mix.d;
        T* out_ptr = reinterpret_cast<T*>(out_dev);
        T* traj_ptr = reinterpret_cast<T*>(traj_dev);
        py::object out = py::none(), traj = py::none();
        if (!on_device) {
          out = maybe<T>(true, {static_cast<py::ssize_t>(n_samples), d}, &out_ptr);
          traj = maybe<T>(!cfg.keep.empty(),
                          {static_cast<py::ssize_t>(cfg.keep.size()), static_cast<py::ssize_t>(n_samples), d},
                          &traj_ptr);
        }
        double* err_ptr = nullptr;
        py::object err = maybe<double>(want_error, {static_cast<py::ssize_t>(cfg.error_slots())}, &err_ptr);
        Progress prog(progress);
        {
          // (A run stops early only when poll says so, and then a failure is stored.)
          py::gil_scoped_release release;
          B::sample(mix, n_samples, cfg, out_ptr, traj_ptr, po, prog.poll(), on_device, err_ptr);
        }
        prog.raise_failure();
        return py::make_tuple(out, traj, err);
      },
      py::arg("mixture"), py::arg("n_samples"), py::arg("config"), py::arg("want_error"), py::arg("progress"),
      py::arg("options"), py::arg("out_dev") = 0, py::arg("traj_dev") = 0);
}

}  // namespace ledkde::bind
