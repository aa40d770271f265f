// What the samplers' native calls share (sampling.cpp: the wavefront pass and the draw;
// diagonal.cpp: the Diagonal BiLSTM's rows): matrices in the engines' buffers, the matrix
// products as the BLAS calls torch's addmm makes, element-wise loops, blocks of rows on threads,
// and the inverse-CDF draw.
#pragma once

#include "fastmath.h"

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

extern "C" {  // BLAS, as torch's CPU library exports it (weak: absent, the Python pass runs)
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace pixelrnn_native {

using idx = int64_t;
using at::Tensor;

// Whether torch's CPU library exports the BLAS calls (it does in the PyPI builds).
inline bool blas() { return sgemm_ != nullptr && dgemm_ != nullptr; }

// A row-major matrix in a buffer: rows × cols, rows `ld` elements apart.
template <typename T>
struct Mat {
  T* p;
  idx rows, cols, ld;
  T* row(idx r) const { return p + r * ld; }
  Mat columns(idx lo, idx hi) const { return {p + lo, rows, hi - lo, ld}; }
};

// Rows [first, first + count) of t[lead...] (a contiguous tensor; the dimensions after `lead`
// flattened into rows of its last dimension).
template <typename T>
Mat<T> rows_of(const Tensor& t, std::initializer_list<idx> lead, idx first, idx count) {
  T* p = t.data_ptr<T>();
  idx d = 0;
  for (idx i : lead) p += i * t.stride(d++);
  const idx cols = t.size(-1);
  return {p + first * cols, count, cols, cols};
}

// A colour group's part of a masked layer (sampling/parts.py, ColourLinear): its output columns
// [lo, hi) read the first k inputs.
struct Cols {
  idx k, lo, hi;
};

inline Cols cols_at(at::IntArrayRef v, idx at) { return {v[at], v[at + 1], v[at + 2]}; }

// Column-major C (m × n) += A (m × k) B (k × n): the BLAS call torch's addmm makes.
inline void gemm(idx m, idx n, idx k, const float* a, idx lda, const float* b, idx ldb, float* c, idx ldc) {
  const int M = m, N = n, K = k, LA = lda, LB = ldb, LC = ldc;
  const float one = 1;
  sgemm_("N", "N", &M, &N, &K, &one, a, &LA, b, &LB, &one, c, &LC);
}
inline void gemm(idx m, idx n, idx k, const double* a, idx lda, const double* b, idx ldb, double* c, idx ldc) {
  const int M = m, N = n, K = k, LA = lda, LB = ldb, LC = ldc;
  const double one = 1;
  dgemm_("N", "N", &M, &N, &K, &one, a, &LA, b, &LB, &one, c, &LC);
}

// out = x @ w + (base if given, else the bias on every row), w (x.cols × out.cols) contiguous:
// torch.addmm(bias or base, x, w, out=out) exactly (it copies the first term into out, then adds
// the product with beta = 1). Returns out.
template <typename T>
Mat<T> linear(Mat<T> out, Mat<T> x, const T* w, const T* bias, const Mat<T>* base = nullptr) {
  for (idx r = 0; r < out.rows; ++r)
    std::memcpy(out.row(r), base ? base->row(r) : bias, out.cols * sizeof(T));
  if (x.cols > 0 && out.cols > 0) gemm(out.cols, out.rows, x.cols, w, out.cols, x.p, x.ld, out.p, out.ld);
  return out;
}

// The same for a colour group: out[:, lo:hi] = x[:, :k] @ w + (base[:, lo:hi] or b).
template <typename T>
Mat<T> linear(Mat<T> out, Mat<T> x, const Tensor& w, const Tensor& b, Cols g, const Mat<T>* base = nullptr) {
  Mat<T> bg = base ? base->columns(g.lo, g.hi) : Mat<T>{};
  return linear(out.columns(g.lo, g.hi), x.columns(0, g.k), w.data_ptr<T>(), b.data_ptr<T>(), base ? &bg : nullptr);
}

// max(v, 0) as torch.relu / clamp_min(0) gives it (NaN kept, -0 to +0)
template <typename T>
inline T relu(T v) {
  return v > 0 || v != v ? v : T(0);
}

template <typename T>
Mat<T> relu_(Mat<T> m) {
  for (idx r = 0; r < m.rows; ++r) {
    T* p = m.row(r);
    for (idx j = 0; j < m.cols; ++j) p[j] = relu(p[j]);
  }
  return m;
}

template <typename T>
void relu_into(Mat<T> out, Mat<T> x) {  // out = relu(x), the same shape
  for (idx r = 0; r < out.rows; ++r) {
    const T* a = x.row(r);
    T* p = out.row(r);
    for (idx j = 0; j < out.cols; ++j) p[j] = relu(a[j]);
  }
}

template <typename T>
void add_row_(Mat<T> m, const T* v) {  // every row += v
  for (idx r = 0; r < m.rows; ++r) {
    T* p = m.row(r);
    for (idx j = 0; j < m.cols; ++j) p[j] += v[j];
  }
}

template <typename T>
void copy_into(Mat<T> out, Mat<T> x) {
  for (idx r = 0; r < out.rows; ++r) std::memcpy(out.row(r), x.row(r), out.cols * sizeof(T));
}

// The rows of one block: image rows lo + u0 .. lo + u1 - 1 of the step, n images each.
struct Block {
  idx u0, u1, n;
  idx units() const { return u1 - u0; }
  idx rows() const { return (u1 - u0) * n; }
  idx first() const { return u0 * n; }
  Tensor of(const Tensor& m) const { return m.narrow(0, first(), rows()); }  // (>= S*n, f) matrices
  template <typename T>
  Mat<T> mat(const Tensor& t, std::initializer_list<idx> lead = {}) const {  // its rows of t[lead]
    return rows_of<T>(t, lead, first(), rows());
  }
};

// Runs fn(Block) on `parts` blocks of the S image rows of a step, one per thread; the blocks start
// at multiples of `align` image rows (see sampling.cpp, Step::align).
template <typename F>
void for_blocks(idx S, idx n, idx parts, const F& fn, idx align = 1) {
  parts = std::max<idx>(1, std::min(parts, S / align));
  if (parts == 1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    fn(Block{0, S, n});
    return;
  }
  auto start = [&](idx p) { return p == parts ? S : (S * p / parts) / align * align; };
  at::parallel_for(0, parts, 1, [&](idx p0, idx p1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    for (idx p = p0; p < p1; ++p)
      if (start(p) < start(p + 1)) fn(Block{start(p), start(p + 1), n});
  });
}

constexpr idx kDrawBlock = 16;

// e: room for L + ceil(L / 16) doubles
template <typename T>
int64_t draw_row(const T* x, idx L, double u, double temperature, double* e) {
  T m = x[0];
  for (idx k = 1; k < L; ++k) m = x[k] > m ? x[k] : m;
  const double top = m;  // divided, not multiplied by 1 / T: a subnormal T has no finite inverse
  for (idx k = 0; k < L; ++k) e[k] = exp_neg((static_cast<double>(x[k]) - top) / temperature);
  constexpr idx B = kDrawBlock;
  double* block = e + L;  // sums of blocks of B entries
  const idx nb = (L + B - 1) / B;
  double total = 0;
  for (idx q = 0; q < nb; ++q) {
    double s = 0;
    for (idx k = q * B; k < std::min(L, (q + 1) * B); ++k) s += e[k];
    block[q] = s;
    total += s;
  }
  const double target = u * total;  // cdf_k < u  <=>  (sum of the first k + 1) < u * total
  double acc = 0;
  idx q = 0;
  while (q < nb && acc + block[q] < target) acc += block[q++];
  if (q == nb) return L - 1;
  for (idx k = q * B; k < L; ++k) {
    acc += e[k];
    if (!(acc < target)) return k;
  }
  return L - 1;
}

template <typename T>
void draw_rows(Mat<T> logits, const double* u, double temperature, int64_t* v) {
  std::vector<double> e(logits.cols + (logits.cols + kDrawBlock - 1) / kDrawBlock);
  for (idx r = 0; r < logits.rows; ++r) v[r] = draw_row(logits.row(r), logits.cols, u[r], temperature, e.data());
}

}  // namespace pixelrnn_native
