// pybind11 bindings of the CPU engine: the private module ledkde._core.
//
// Thin on purpose: every argument was validated by python/ledkde/_checks.py
// (the one validation layer), arrays arrive C-contiguous in the working dtype,
// and each kernel runs with the GIL released. No mathematics here.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "blas.h"
#include "ledkde/cpu.h"
#include "ledkde/philox.h"

namespace py = pybind11;
using namespace ledkde;

namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;

PassOptions pass_options(int threads, int64_t tile_q, int64_t tile_n) {
  PassOptions o;
  o.threads = threads;
  o.tile_q = tile_q;
  o.tile_n = tile_n;
  return o;
}

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

template <class T>
void bind_dtype(py::module_& m, const char* mixture_name) {
  py::class_<Mixture<T>>(m, mixture_name)
      .def_readonly("n", &Mixture<T>::n)
      .def_readonly("d", &Mixture<T>::d)
      .def_readonly("log_mass", &Mixture<T>::log_mass);

  m.def(
      "prepare",
      [](CArray<T> data, std::optional<F64> log_weights, std::optional<F64> variances) {
        const T* p = data.data();
        const int64_t n = data.shape(0), d = data.shape(1);
        const double* lw = log_weights ? log_weights->data() : nullptr;
        const double* var = variances ? variances->data() : nullptr;
        py::gil_scoped_release release;
        return prepare_mixture<T>(p, n, d, lw, var);
      },
      py::arg("data"), py::arg("log_weights"), py::arg("variances"));

  m.def(
      "evaluate",
      [](const Mixture<T>& mix, CArray<T> y, double t, unsigned outputs, int threads,
         int64_t tile_q, int64_t tile_n) {
        const py::ssize_t q = y.shape(0), d = y.shape(1);
        PassOutputs<T> o;
        py::object ld = maybe<T>(outputs & kOutLogDensity, {q}, &o.log_density);
        py::object sc = maybe<T>(outputs & kOutScore, {q, d}, &o.score);
        py::object dn = maybe<T>(outputs & kOutDenoise, {q, d}, &o.denoise);
        py::object en = maybe<T>(outputs & kOutEntropy, {q}, &o.entropy);
        py::object mw = maybe<T>(outputs & kOutMaxWeight, {q}, &o.max_weight);
        const T* py_ = y.data();
        {
          py::gil_scoped_release release;
          evaluate_cpu<T>(mix, py_, q, t, o, pass_options(threads, tile_q, tile_n));
        }
        return py::make_tuple(ld, sc, dn, en, mw);
      },
      py::arg("mixture"), py::arg("y"), py::arg("t"), py::arg("outputs"), py::arg("threads"),
      py::arg("tile_q"), py::arg("tile_n"));

  m.def(
      "partial",
      [](const Mixture<T>& mix, CArray<T> y, double t, int threads, int64_t tile_q,
         int64_t tile_n) {
        const py::ssize_t q = y.shape(0), d = y.shape(1);
        F64 mm({q}), S({q}), E({q}), A({q, d});
        PartialState st{mm.mutable_data(), S.mutable_data(), E.mutable_data(), A.mutable_data()};
        const T* py_ = y.data();
        {
          py::gil_scoped_release release;
          partial_cpu<T>(mix, py_, q, t, st, pass_options(threads, tile_q, tile_n));
        }
        return py::make_tuple(mm, S, E, A);
      },
      py::arg("mixture"), py::arg("y"), py::arg("t"), py::arg("threads"), py::arg("tile_q"),
      py::arg("tile_n"));

  m.def(
      "knn",
      [](const Mixture<T>& mix, CArray<T> y, int64_t k, int threads, int64_t tile_q, int64_t tile_n) {
        const py::ssize_t q = y.shape(0);
        py::array_t<int64_t> idx({q, static_cast<py::ssize_t>(k)});
        CArray<T> dist({q, static_cast<py::ssize_t>(k)});
        const T* py_ = y.data();
        int64_t* pi = idx.mutable_data();
        T* pd = dist.mutable_data();
        {
          py::gil_scoped_release release;
          knn_cpu<T>(mix, py_, q, k, pi, pd, pass_options(threads, tile_q, tile_n));
        }
        return py::make_tuple(dist, idx);
      },
      py::arg("mixture"), py::arg("y"), py::arg("k"), py::arg("threads"), py::arg("tile_q"),
      py::arg("tile_n"));

  m.def(
      "smoothed",
      [](const Mixture<T>& mix, CArray<T> y, double t, double bandwidth, int64_t n_kernel,
         int kernel, bool antithetic, uint64_t seed, uint32_t eval, bool want_score, bool want_ld,
         int threads, int64_t tile_q, int64_t tile_n) {
        const py::ssize_t q = y.shape(0), d = y.shape(1);
        SmoothOptions sm;
        sm.bandwidth = bandwidth;
        sm.n_kernel = n_kernel;
        sm.kernel = kernel;
        sm.antithetic = antithetic;
        sm.seed = seed;
        sm.eval = eval;
        T *ps, *pl;
        py::object sc = maybe<T>(want_score, {q, d}, &ps);
        py::object ld = maybe<T>(want_ld, {q}, &pl);
        const T* py_ = y.data();
        {
          py::gil_scoped_release release;
          smoothed_cpu<T>(mix, py_, q, t, sm, ps, pl, pass_options(threads, tile_q, tile_n));
        }
        return py::make_tuple(sc, ld);
      },
      py::arg("mixture"), py::arg("y"), py::arg("t"), py::arg("bandwidth"), py::arg("n_kernel"),
      py::arg("kernel"), py::arg("antithetic"), py::arg("seed"), py::arg("eval"),
      py::arg("want_score"), py::arg("want_log_density"), py::arg("threads"), py::arg("tile_q"),
      py::arg("tile_n"));

  m.def(
      "sample",
      [](const Mixture<T>& mix, int64_t n_samples, F64 times, F64 bandwidth, int method,
         int64_t n_kernel, int kernel, bool antithetic, int init, bool denoise_last, uint64_t seed,
         std::vector<int64_t> keep, py::object progress, int threads, int64_t tile_q,
         int64_t tile_n) {
        SamplerConfig cfg;
        cfg.method = method;
        cfg.times.assign(times.data(), times.data() + times.size());
        cfg.bandwidth.assign(bandwidth.data(), bandwidth.data() + bandwidth.size());
        cfg.n_kernel = n_kernel;
        cfg.kernel = kernel;
        cfg.antithetic = antithetic;
        cfg.init = init;
        cfg.denoise_last = denoise_last;
        cfg.seed = seed;
        cfg.keep = keep;
        const py::ssize_t d = mix.d;
        CArray<T> out({static_cast<py::ssize_t>(n_samples), d});
        T* traj_ptr = nullptr;
        py::object traj = maybe<T>(!keep.empty(),
                                   {static_cast<py::ssize_t>(keep.size()),
                                    static_cast<py::ssize_t>(n_samples), d},
                                   &traj_ptr);
        // Runs on this thread with the GIL released; takes the GIL to look
        // for Ctrl-C and to report progress. Never throws into the engine.
        std::optional<py::error_already_set> failure;
        PollFn poll = [&](int64_t done, int64_t total) {
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
        T* out_ptr = out.mutable_data();
        bool finished;
        {
          py::gil_scoped_release release;
          finished = sample_cpu<T>(mix, n_samples, cfg, out_ptr, traj_ptr,
                                   pass_options(threads, tile_q, tile_n), poll);
        }
        if (!finished && failure) throw std::move(*failure);
        return py::make_tuple(out, traj);
      },
      py::arg("mixture"), py::arg("n_samples"), py::arg("times"), py::arg("bandwidth"),
      py::arg("method"), py::arg("n_kernel"), py::arg("kernel"), py::arg("antithetic"),
      py::arg("init"), py::arg("denoise_last"), py::arg("seed"), py::arg("keep"),
      py::arg("progress"), py::arg("threads"), py::arg("tile_q"), py::arg("tile_n"));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ledkde compiled engine (private; use the ledkde package).";
  blas::single_threaded();
  bind_dtype<float>(m, "Mixture32");
  bind_dtype<double>(m, "Mixture64");

  // The random stream, exposed so that tests can check the NumPy reference
  // against the engine number for number.
  m.def(
      "stream_normals",
      [](uint64_t seed, uint32_t index, uint32_t step, uint32_t purpose, uint32_t draw,
         int64_t d) {
        F64 out({static_cast<py::ssize_t>(d)});
        stream_normal_vector(seed, index, step, purpose, draw, d, out.mutable_data());
        return out;
      },
      py::arg("seed"), py::arg("index"), py::arg("step"), py::arg("purpose"), py::arg("draw"),
      py::arg("d"));
  m.def(
      "philox4x32_10",
      [](std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
        const Philox4 r = philox4x32_10(Philox4{{counter[0], counter[1], counter[2], counter[3]}},
                                        key[0], key[1]);
        return std::array<uint32_t, 4>{r.v[0], r.v[1], r.v[2], r.v[3]};
      },
      py::arg("counter"), py::arg("key"));
  m.def(
      "merge_states",
      [](F64 m1, F64 S1, F64 E1, F64 A1, F64 m2, F64 S2, F64 E2, F64 A2) {
        const py::ssize_t q = m1.shape(0), d = A1.shape(1);
        // Results are new arrays: the inputs stay as they were.
        auto copy_of = [](const F64& x) {
          F64 c(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
          std::copy(x.data(), x.data() + x.size(), c.mutable_data());
          return c;
        };
        F64 m = copy_of(m1), S = copy_of(S1), E = copy_of(E1), A = copy_of(A1);
        PartialState a{m.mutable_data(), S.mutable_data(), E.mutable_data(), A.mutable_data()};
        PartialState b{const_cast<double*>(m2.data()), const_cast<double*>(S2.data()),
                       const_cast<double*>(E2.data()), const_cast<double*>(A2.data())};
        merge_states_cpu(q, d, a, b);
        return py::make_tuple(m, S, E, A);
      });
  m.def("finalize_state", [](F64 m, F64 S, F64 E, F64 A) {
    const py::ssize_t q = m.shape(0), d = A.shape(1);
    F64 ld({q}), sc({q, d}), en({q}), mw({q});
    PartialState s{const_cast<double*>(m.data()), const_cast<double*>(S.data()),
                   const_cast<double*>(E.data()), const_cast<double*>(A.data())};
    finalize_states_cpu(q, d, s, ld.mutable_data(), sc.mutable_data(), en.mutable_data(),
                        mw.mutable_data());
    return py::make_tuple(ld, sc, en, mw);
  });
  m.attr("PURPOSE_NOISE") = static_cast<int>(kNoise);
  m.attr("PURPOSE_INIT_NOISE") = static_cast<int>(kInitNoise);
  m.attr("PURPOSE_INIT_INDEX") = static_cast<int>(kInitIndex);
  m.attr("PURPOSE_KERNEL") = static_cast<int>(kKernel);
  m.attr("OUT_LOG_DENSITY") = static_cast<int>(kOutLogDensity);
  m.attr("OUT_SCORE") = static_cast<int>(kOutScore);
  m.attr("OUT_DENOISE") = static_cast<int>(kOutDenoise);
  m.attr("OUT_ENTROPY") = static_cast<int>(kOutEntropy);
  m.attr("OUT_MAX_WEIGHT") = static_cast<int>(kOutMaxWeight);
}
