// The equivariant local (ELS) denoiser (local_cpu.h): per query pixel p, a
// mixture pass whose components are the training patches P_q x_n at every
// position q (all of them, or with padding "boundary" those whose windows the
// border cuts as p's), and the denoiser the centre pixel of the patch's
// posterior mean. The patches are cut from a chunk of images at a time,
// identical ones merged (their weights summed), prepared as a Mixture and
// reduced by the engine's own pass (partial_cpu: exact near the maximum,
// pruned where that pays); the chunks' partial states merge exactly. Memory:
// the images, the query patches of one block and one chunk of patches.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <map>
#include <numeric>
#include <tuple>
#include <utility>
#include <vector>

#include "ledkde/cpu.h"
#include "ledkde/finish_rows.h"
#include "local_cpu.h"
#include "parallel.h"

namespace ledkde {

namespace {

// Bytes of patch rows held at once (a chunk of training patches, a block of query patches).
constexpr int64_t kChunkBytes = int64_t(48) << 20;

struct Geometry {
  int64_t h, w, c, r, P, dp;  // dp = P * P * c, the dimension of a patch
  bool circular;
};

// The patch of image img (h, w, c) centred on pixel (i, j), into out (dp):
// a window inside the image row by row (P c contiguous values each), else
// pixel by pixel, wrapped (circular) or zero outside.
template <class T>
void cut_patch(const Geometry& g, const T* img, int64_t i, int64_t j, T* out) {
  const int64_t row = g.P * g.c;
  if (i >= g.r && i + g.r < g.h && j >= g.r && j + g.r < g.w) {
    const T* src = img + ((i - g.r) * g.w + (j - g.r)) * g.c;
    for (int64_t a = 0; a < g.P; ++a)
      std::memcpy(out + a * row, src + a * g.w * g.c, static_cast<size_t>(row) * sizeof(T));
    return;
  }
  for (int64_t a = -g.r; a <= g.r; ++a)
    for (int64_t b = -g.r; b <= g.r; ++b) {
      T* o = out + ((a + g.r) * g.P + (b + g.r)) * g.c;
      int64_t ii = i + a, jj = j + b;
      if (g.circular) {
        ii = ((ii % g.h) + g.h) % g.h;
        jj = ((jj % g.w) + g.w) % g.w;
      } else if (ii < 0 || ii >= g.h || jj < 0 || jj >= g.w) {
        std::fill(o, o + g.c, T(0));
        continue;
      }
      std::copy_n(img + (ii * g.w + jj) * g.c, g.c, o);
    }
}

// The query pixels in groups that meet the same training positions: one group
// of every pixel, or (boundary) one per way the border cuts the window.
std::vector<std::vector<int64_t>> position_groups(const Geometry& g, bool boundary) {
  std::vector<std::vector<int64_t>> groups;
  if (!boundary) {
    groups.emplace_back(static_cast<size_t>(g.h * g.w));
    std::iota(groups[0].begin(), groups[0].end(), 0);
    return groups;
  }
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, size_t> index;
  for (int64_t i = 0; i < g.h; ++i)
    for (int64_t j = 0; j < g.w; ++j) {
      const auto key = std::make_tuple(std::max<int64_t>(0, g.r - i), std::max<int64_t>(0, i + g.r - (g.h - 1)),
                                       std::max<int64_t>(0, g.r - j), std::max<int64_t>(0, j + g.r - (g.w - 1)));
      auto it = index.find(key);
      if (it == index.end()) {
        it = index.emplace(key, groups.size()).first;
        groups.emplace_back();
      }
      groups[it->second].push_back(i * g.w + j);
    }
  return groups;
}

// A 64-bit hash of a patch's bytes, eight at a time (a multiply and
// xor-shift per word): equal patches hash alike.
inline uint64_t patch_hash(const unsigned char* bytes, size_t len) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ len;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    h = (h ^ word) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  if (i < len) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + i, len - i);
    h = (h ^ word) * 0x94D049BB133111EBull;
    h ^= h >> 29;
  }
  return h;
}

// log(exp(a) + exp(b)), -inf allowed.
inline double log_add(double a, double b) {
  const double top = std::max(a, b);
  return top == neg_inf() ? top : top + std::log(std::exp(a - top) + std::exp(b - top));
}

// Distinct patches, added one at a time: each patch is cut into a buffer and
// either appended to comps or, when an equal one is there already, its weight
// added to that one's; equal patches are found by an open-addressing table
// of (index, high hash bits) entries (equal hashes compared byte for byte),
// and the all-zero patch (an image's empty background) without the table.
// The patches keep the order of their first copy.
template <class T>
class PatchSet {
 public:
  PatchSet(int64_t count, int64_t dp, bool weighted, std::vector<T>& comps, std::vector<double>& logw)
      : dp_(dp), bytes_(static_cast<size_t>(dp) * sizeof(T)), weighted_(weighted), comps_(comps), logw_(logw) {
    while (cap_ < 2 * static_cast<size_t>(count)) cap_ *= 2;
    table_.assign(cap_, kEmpty);
    comps_.clear();
    comps_.reserve(static_cast<size_t>(count * dp));
    logw_.clear();
  }

  void add(const T* patch, double lw) {
    if (std::all_of(patch, patch + dp_, [](T v) { return v == T(0) && !std::signbit(v); })) {
      if (zero_ < 0) zero_ = append(patch, lw);
      else merge_into(zero_, lw);
      return;
    }
    const uint64_t h = patch_hash(reinterpret_cast<const unsigned char*>(patch), bytes_), tag = h >> 32;
    for (size_t s = h & (cap_ - 1);; s = (s + 1) & (cap_ - 1)) {
      const uint64_t e = table_[s];
      if (e == kEmpty) {
        table_[s] = (static_cast<uint64_t>(append(patch, lw)) << 32) | tag;
        return;
      }
      const int64_t k = static_cast<int64_t>(e >> 32);
      if ((e & 0xFFFFFFFFull) == tag && std::memcmp(comps_.data() + k * dp_, patch, bytes_) == 0) {
        merge_into(k, lw);
        return;
      }
    }
  }

  // The log-weights of the distinct patches (equal weights: the log of the copies).
  void finish() {
    if (!weighted_)
      for (size_t k = 0; k < logw_.size(); ++k) logw_[k] = std::log(static_cast<double>(copies_[k]));
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  int64_t append(const T* patch, double lw) {
    comps_.insert(comps_.end(), patch, patch + dp_);
    logw_.push_back(lw);
    copies_.push_back(1);
    return static_cast<int64_t>(logw_.size()) - 1;
  }
  void merge_into(int64_t k, double lw) {
    if (weighted_) logw_[k] = log_add(logw_[k], lw);
    else ++copies_[k];
  }
  int64_t dp_;
  size_t bytes_, cap_ = 16;
  bool weighted_;
  int64_t zero_ = -1;
  std::vector<T>& comps_;
  std::vector<double>& logw_;
  std::vector<uint64_t> table_;
  std::vector<int64_t> copies_;
};

// The patches of images [n0, n1) at the positions pos, identical ones merged
// (merge, PatchSet): their rows into comps, each one's log-weight (the log of
// the summed weights a_n of its copies) into logw. Returns whether the
// weights differ (else the Mixture takes equal weights).
template <class T>
bool chunk_patches(const LocalImages<T>& img, const Geometry& g, const std::vector<int64_t>& pos, int64_t n0,
                   int64_t n1, bool merge, std::vector<T>& comps, std::vector<double>& logw) {
  const int64_t np = static_cast<int64_t>(pos.size()), count = (n1 - n0) * np, d = img.d();
  auto weight = [&](int64_t n) { return img.logw.empty() ? 0.0 : img.logw[n]; };
  if (!merge) {
    comps.resize(static_cast<size_t>(count * g.dp));
    logw.resize(static_cast<size_t>(count));
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t k = 0; k < np; ++k) {
        const int64_t row = (n - n0) * np + k;
        cut_patch(g, img.x.data() + n * d, pos[k] / g.w, pos[k] % g.w, comps.data() + row * g.dp);
        logw[row] = weight(n);
      }
    return !img.logw.empty();
  }
  PatchSet<T> set(count, g.dp, !img.logw.empty(), comps, logw);
  std::vector<T> patch(static_cast<size_t>(g.dp));
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t k = 0; k < np; ++k) {
      cut_patch(g, img.x.data() + n * d, pos[k] / g.w, pos[k] % g.w, patch.data());
      set.add(patch.data(), weight(n));
    }
  set.finish();
  return !img.logw.empty() || static_cast<int64_t>(logw.size()) < count;
}

// The states (m, S, E, A, B) of the query patch rows over all training
// patches at the positions pos: a chunk of images at a time, merged in chunk order.
template <class T>
void els_states(const LocalImages<T>& img, const Geometry& g, const LocalSpec& spec, const std::vector<int64_t>& pos,
                const T* rows, int64_t q, double t, std::vector<double>* st, const PassOptions& opt) {
  const int64_t np = static_cast<int64_t>(pos.size());
  const int64_t per = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, np * g.dp * sizeof(T)));
  std::vector<double> cm(q), cS(q), cE(q), cA(static_cast<size_t>(q * g.dp)), cB(q);
  std::vector<T> comps;
  std::vector<double> logw;
  PartialState acc{st[0].data(), st[1].data(), st[2].data(), st[3].data(), st[4].data()};
  PartialState part{cm.data(), cS.data(), cE.data(), cA.data(), cB.data()};
  // Only the centre pixel of the posterior mean is read (els_denoise).
  PassOptions values = opt;
  values.value_begin = (g.r * g.P + g.r) * g.c;
  values.value_count = g.c;
  for (int64_t n0 = 0; n0 < img.n; n0 += per) {
    if (opt.stop && opt.stop->poll()) throw Cancelled();
    const int64_t n1 = std::min(img.n, n0 + per);
    const bool weighted = chunk_patches(img, g, pos, n0, n1, spec.merge, comps, logw);
    const int64_t nc = static_cast<int64_t>(logw.size());
    const Mixture<T> mix = prepare_mixture(comps.data(), nc, g.dp, weighted ? logw.data() : nullptr, nullptr,
                                           opt.threads, true, opt.stop);
    partial_cpu(mix, rows, q, t, part, values);
    merge_states_cpu(q, g.dp, acc, part);
  }
}

}  // namespace

template <class T>
void els_denoise(const LocalImages<T>& img, const LocalSpec& spec, const T* y, int64_t q, double t, double* out,
                 const PassOptions& opt) {
  const int64_t r = (spec.patch - 1) / 2, P = spec.patch;
  const Geometry g{img.h, img.w, img.c, r, P, P * P * img.c, spec.padding == kPadCircular};
  const int64_t d = img.d(), centre = (r * P + r) * g.c;
  for (const std::vector<int64_t>& pos : position_groups(g, spec.padding == kPadBoundary)) {
    const int64_t np = static_cast<int64_t>(pos.size());
    // Query images in blocks whose patch rows stay within kChunkBytes.
    const int64_t per = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, np * g.dp * sizeof(T)));
    for (int64_t i0 = 0; i0 < q; i0 += per) {
      const int64_t qb = std::min(per, q - i0), rows_n = qb * np;
      std::vector<T> rows(static_cast<size_t>(rows_n * g.dp));
      for (int64_t i = 0; i < qb; ++i)
        for (int64_t k = 0; k < np; ++k)
          cut_patch(g, y + (i0 + i) * d, pos[k] / g.w, pos[k] % g.w, rows.data() + (i * np + k) * g.dp);
      std::vector<double> st[5] = {std::vector<double>(rows_n, neg_inf()), std::vector<double>(rows_n, 0.0),
                                   std::vector<double>(rows_n, 0.0),
                                   std::vector<double>(static_cast<size_t>(rows_n * g.dp), 0.0),
                                   std::vector<double>(rows_n, 0.0)};
      els_states(img, g, spec, pos, rows.data(), rows_n, t, st, opt);
      // The centre pixel of each patch's posterior mean: y_p + t A_centre / S.
      for (int64_t i = 0; i < qb; ++i)
        for (int64_t k = 0; k < np; ++k) {
          const int64_t row = i * np + k, p = pos[k];
          for (int64_t ch = 0; ch < g.c; ++ch)
            out[(i0 + i) * d + p * g.c + ch] =
                static_cast<double>(y[(i0 + i) * d + p * g.c + ch]) + t * st[3][row * g.dp + centre + ch] / st[1][row];
        }
    }
  }
}

template void els_denoise(const LocalImages<float>&, const LocalSpec&, const float*, int64_t, double, double*,
                          const PassOptions&);
template void els_denoise(const LocalImages<double>&, const LocalSpec&, const double*, int64_t, double, double*,
                          const PassOptions&);

}  // namespace ledkde
