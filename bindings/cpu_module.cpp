// pybind11 bindings of the CPU engine: the private module ledkde._core.
// The operations shared with the CUDA module are bound by bind_ops.h; this
// file adds what only the CPU module has (mixture preparation, neighbours,
// state merging, the random stream for tests). No mathematics here.
#include "bind_ops.h"
#include "bind_local.h"
#include "bind_remote.h"
#include "ledkde/cpu.h"
#include "parallel.h"
#include "row_kernels.h"
#include "tile_gemm.h"
#include "blas.h"
#include "ledkde/philox.h"

namespace py = pybind11;
using namespace ledkde;
using namespace ledkde::bind;

namespace {

// The CPU backend for bind_ops.
template <class T>
struct CpuBackend {
  using Scalar = T;
  using Mix = Mixture<T>;
  static void evaluate(const Mix& mix, const T* y, int64_t q, double t, PassOutputs<T> o,
                       const PassOptions& opt) {
    evaluate_cpu<T>(mix, y, q, t, o, opt);
  }
  static void partial(const Mix& mix, const T* y, int64_t q, double t, PartialState s,
                      const PassOptions& opt) {
    partial_cpu<T>(mix, y, q, t, s, opt);
  }
  static void smoothed(const Mix& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                       SmoothOutputs<T> out, const PassOptions& opt) {
    smoothed_cpu<T>(mix, y, q, t, sm, out, opt);
  }
  static constexpr bool kDeviceOutput = false;
  static bool sample(const Mix& mix, int64_t n, const SamplerConfig& cfg, T* out, T* traj,
                     const PassOptions& opt, const PollFn& poll, bool, double* mc_error) {
    return sample_cpu<T>(mix, n, cfg, out, traj, opt, poll, mc_error);
  }
};

// Runs f(stop) with the GIL released and a stop flag that Ctrl-C raises;
// raises KeyboardInterrupt when it did.
template <class F>
void interruptible(F&& f) {
  Interrupt intr;
  StopFlag stop(intr.check());
  bool cancelled = false;
  {
    py::gil_scoped_release release;
    try {
      f(&stop);
    } catch (const Cancelled&) {
      cancelled = true;
    }
  }
  if (intr.failure) throw std::move(*intr.failure);
  if (cancelled) throw std::runtime_error("the call was cancelled");
}

template <class T>
void bind_dtype(py::module_& m, const char* mixture_name, const char* remote_name, const char* local_name) {
  py::class_<Mixture<T>>(m, mixture_name)
      .def_readonly("n", &Mixture<T>::n)
      .def_readonly("d", &Mixture<T>::d)
      .def_readonly("log_mass", &Mixture<T>::log_mass)
      // The centre the components were moved by and their largest squared
      // distance from it (float64): the range checks of the Python layer.
      .def_readonly("norm2_max", &Mixture<T>::norm2_max)
      .def_readonly("resolution", &Mixture<T>::resolution)
      .def_property_readonly("centre", [](const Mixture<T>& m) {
        return py::array_t<double>(static_cast<py::ssize_t>(m.centre.size()), m.centre.data());
      })
      // The projection of the certified pruning (engine.h Projection): its k (0: none).
      .def_property_readonly("projection_k", [](const Mixture<T>& m) { return m.proj.k; })
      // The error allowed in a logit (exactness.h; 0: the strict rule, 64 eps),
      // set once by the Python layer right after prepare (_checks.engine_logit_tolerance).
      .def_readwrite("logit_tol", &Mixture<T>::logit_tol)
      .def(
          "set_projection",
          [](Mixture<T>& m, F64 basis, int threads) {
            check_rows("basis", basis, m.d);
            const int64_t k = basis.shape(0);
            const double* b = basis.data();
            interruptible([&](StopFlag* stop) { set_projection<T>(m, b, k, threads, stop); });
          },
          py::arg("basis"), py::arg("threads"));

  m.def(
      "prepare",
      [](CArray<T> data, std::optional<F64> log_weights, std::optional<F64> variances, int threads,
         bool pack) {
        const T* p = data.data();
        const int64_t n = data.shape(0), d = data.shape(1);
        if ((log_weights && log_weights->size() != n) || (variances && variances->size() != n))
          throw std::invalid_argument("log_weights, variances: expected (n,) each");
        const double* lw = log_weights ? log_weights->data() : nullptr;
        const double* var = variances ? variances->data() : nullptr;
        Mixture<T> mix;
        interruptible([&](StopFlag* stop) { mix = prepare_mixture<T>(p, n, d, lw, var, threads, pack, stop); });
        return mix;
      },
      py::arg("data"), py::arg("log_weights"), py::arg("variances"), py::arg("threads"),
      py::arg("pack") = true);

  m.def(
      "denoise_vjp",
      [](CArray<T> points, std::optional<F64> log_weights, F64 centre, F64 y, F64 v, double t, PassOptions po) {
        const int64_t n = points.shape(0), d = points.ndim() == 2 ? points.shape(1) : -1;
        if (points.ndim() != 2) throw std::invalid_argument("points: expected (n, d)");
        if (log_weights && log_weights->size() != n) throw std::invalid_argument("log_weights: expected (n,)");
        if (centre.size() != d) throw std::invalid_argument("centre: expected (d,)");
        check_rows("y", y, d);
        check_rows("v", v, d);
        if (v.shape(0) != y.shape(0)) throw std::invalid_argument("v: expected as many rows as y");
        const py::ssize_t q = y.shape(0);
        F64 jv({q, static_cast<py::ssize_t>(d)}), ds({q});
        const VjpPoints<T> pts{points.data(), n, d, log_weights ? log_weights->data() : nullptr, centre.data()};
        const double *py_ = y.data(), *pv = v.data();
        double *pj = jv.mutable_data(), *pd = ds.mutable_data();
        Interrupt().run(po, [&] { denoise_vjp_cpu<T>(pts, py_, pv, q, t, pj, pd, po); });
        return py::make_tuple(jv, ds);
      },
      py::arg("points"), py::arg("log_weights"), py::arg("centre"), py::arg("y"), py::arg("v"), py::arg("t"),
      py::arg("options"));

  m.def(
      "knn",
      [](const Mixture<T>& mix, CArray<T> y, int64_t k, PassOptions po) {
        check_rows("y", y, mix.d);
        if (k < 1 || k > mix.n) throw std::invalid_argument("k: must lie in [1, n]");
        const py::ssize_t q = y.shape(0);
        py::array_t<int64_t> idx({q, static_cast<py::ssize_t>(k)});
        CArray<T> dist({q, static_cast<py::ssize_t>(k)});
        const T* py_ = y.data();
        int64_t* pi = idx.mutable_data();
        T* pd = dist.mutable_data();
        Interrupt().run(po, [&] { knn_cpu<T>(mix, py_, q, k, pi, pd, po); });
        return py::make_tuple(dist, idx);
      },
      py::arg("mixture"), py::arg("y"), py::arg("k"), py::arg("options"));

  bind_ops<CpuBackend<T>>(m);
  bind_remote<T>(m, remote_name);
  bind_local<T>(m, local_name);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ledkde compiled engine (private; use the ledkde package).";
  blas::single_threaded();
  bind_options(m);
  bind_local_spec(m);
  bind_dtype<float>(m, "Mixture32", "RemoteSource32", "LocalImages32");
  bind_dtype<double>(m, "Mixture64", "RemoteSource64", "LocalImages64");

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
      "kernel_draws",
      [](uint64_t seed, uint32_t index, uint32_t eval, int64_t n_kernel, bool antithetic, bool orthogonal,
         int kernel, double bandwidth, int64_t d) {
        F64 out({static_cast<py::ssize_t>(n_kernel), static_cast<py::ssize_t>(d)});
        kernel_draws(seed, index, eval, n_kernel, antithetic, orthogonal, kernel, bandwidth, d,
                     out.mutable_data());
        return out;
      },
      py::arg("seed"), py::arg("index"), py::arg("eval"), py::arg("n_kernel"), py::arg("antithetic"),
      py::arg("orthogonal"), py::arg("kernel"), py::arg("bandwidth"), py::arg("d"));
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
      [](F64 m1, F64 S1, F64 E1, F64 A1, F64 m2, F64 S2, F64 E2, F64 A2, std::optional<F64> B1,
         std::optional<F64> B2) {
        if (m1.ndim() != 1 || A1.ndim() != 2) throw std::invalid_argument("merge_states: m (q,) and A (q, d)");
        const py::ssize_t q = m1.shape(0), d = A1.shape(1);
        for (const F64* v : {&S1, &E1, &m2, &S2, &E2})
          if (v->ndim() != 1 || v->shape(0) != q) throw std::invalid_argument("merge_states: every m, S, E of shape (q,)");
        check_rows("A2", A2, d);
        if (A1.shape(0) != q || A2.shape(0) != q) throw std::invalid_argument("merge_states: A of shape (q, d)");
        if (B1.has_value() != B2.has_value()) throw std::invalid_argument("merge_states: give both B or neither");
        if (B1 && (B1->size() != q || B2->size() != q)) throw std::invalid_argument("merge_states: B of shape (q,)");
        // Results are new arrays: the inputs stay as they were.
        auto copy_of = [](const F64& x) {
          F64 c(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
          std::copy(x.data(), x.data() + x.size(), c.mutable_data());
          return c;
        };
        F64 m = copy_of(m1), S = copy_of(S1), E = copy_of(E1), A = copy_of(A1);
        py::object B = py::none();
        PartialState a{m.mutable_data(), S.mutable_data(), E.mutable_data(), A.mutable_data()};
        PartialState b{const_cast<double*>(m2.data()), const_cast<double*>(S2.data()),
                       const_cast<double*>(E2.data()), const_cast<double*>(A2.data())};
        if (B1) {  // B = sum p / v rescales as A (finish_rows.h merge_row)
          F64 Bm = copy_of(*B1);
          a.B = Bm.mutable_data();
          b.B = const_cast<double*>(B2->data());
          B = Bm;
        }
        merge_states_cpu(q, d, a, b);
        return py::make_tuple(m, S, E, A, B);
      },
      py::arg("m1"), py::arg("S1"), py::arg("E1"), py::arg("A1"), py::arg("m2"), py::arg("S2"), py::arg("E2"),
      py::arg("A2"), py::arg("B1") = py::none(), py::arg("B2") = py::none());
  m.def("finalize_state", [](F64 m, F64 S, F64 E, F64 A) {
    if (m.ndim() != 1 || A.ndim() != 2 || A.shape(0) != m.shape(0) || S.size() != m.size() || E.size() != m.size())
      throw std::invalid_argument("finalize_state: m, S, E of shape (q,) and A of shape (q, d)");
    const py::ssize_t q = m.shape(0), d = A.shape(1);
    F64 ld({q}), sc({q, d}), en({q}), mw({q});
    PartialState s{const_cast<double*>(m.data()), const_cast<double*>(S.data()),
                   const_cast<double*>(E.data()), const_cast<double*>(A.data())};
    finalize_states_cpu(q, d, s, ld.mutable_data(), sc.mutable_data(), en.mutable_data(),
                        mw.mutable_data());
    return py::make_tuple(ld, sc, en, mw);
  }, py::arg("m"), py::arg("S"), py::arg("E"), py::arg("A"));
  m.def(
      "prune_counts",
      [](bool reset) {
        int64_t considered = 0, computed = 0;
        prune_counts(&considered, &computed, reset);
        return py::make_tuple(considered, computed);
      },
      py::arg("reset") = false,
      "(pairs looked at, pairs whose distance was computed) by the CPU passes since the last reset.");
  // Which built-in tile products this CPU uses for moderate d ("avx512", "avx2", "none").
  m.attr("TILE_GEMM_ISA") = std::string(tile_gemm::isa());
  // Which build of the row kernels this CPU uses ("avx512", "avx2", "baseline").
  m.attr("ROW_KERNELS_ISA") = std::string(rows::isa());
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
