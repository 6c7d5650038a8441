// One query row's running state during a CPU pass, and the two moves the pass
// makes with it (the online log-sum-exp of tile_math.h, for a whole row):
//   move_to(m)      rescale the state onto a larger maximum m;
//   merge_tile(..)  add a tile's sums, taken relative to its own shift.
// The state lives in the workspace's arrays (m, S, E, A, B: the convention of
// every pass, PartialState in engine.h); a RowState reads row i's scalars when
// made and writes them back when it goes out of scope, so every route of the
// pass (pass_cpu.cpp) can leave early without losing them.
#pragma once

#include <cstdint>

#include "ledkde/tile_math.h"

namespace ledkde {

class RowState {
 public:
  // Row i of the arrays m, S, E (rows,), A (rows, d) and B (rows,).
  RowState(double* m, double* S, double* E, double* A, double* B, int64_t i, int64_t d)
      : st{m[i], S[i], E[i]}, m_(m + i), S_(S + i), E_(E + i), A_(A + i * d), B_(B + i), d_(d) {}
  ~RowState() {
    *m_ = st.m;
    *S_ = st.S;
    *E_ = st.E;
  }
  RowState(const RowState&) = delete;
  RowState& operator=(const RowState&) = delete;

  double max() const { return st.m; }
  double* A() const { return A_; }
  double& B() const { return *B_; }

  // Moves the state (S, E, and the sums A and B) onto the maximum m >= max().
  void move_to(double m) {
    const double a = lse_move_to(st, m);
    // Same maximum (or an empty state, whose sums are 0): nothing to rescale.
    if (a == 1.0) return;
    for (int64_t k = 0; k < d_; ++k) A_[k] *= a;
    *B_ *= a;
  }

  // Adds a tile's (S, E), taken relative to its shift ts, with the state and
  // the tile both moved onto the maximum m_new >= max(max(), ts); returns the
  // factor that moves the tile's own sums of A and B onto m_new.
  double merge_tile(double ts, double S, double E, double m_new) {
    move_to(m_new);
    LseScalars tile{ts, S, E};
    const double f = lse_move_to(tile, m_new);
    st.S += tile.S;
    st.E += tile.E;
    return f;
  }

  // Adds sums taken relative to the state's own maximum.
  void add(double S, double E) {
    st.S += S;
    st.E += E;
  }

  LseScalars st;

 private:
  double *m_, *S_, *E_, *A_, *B_;
  int64_t d_;
};

}  // namespace ledkde
