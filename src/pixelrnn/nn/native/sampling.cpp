// The cached samplers' wavefront pass and value draw as native calls (pixelrnn.sampling).
//
// The wavefront schedule (sampling/core.py) runs the network on the S pixels of a step,
// (i, t - s*i) for i = lo..hi, as matrices of S*n rows (row-major over (i, image)); one pass per
// colour computes the first k×k conv, every residual block and the output head for those rows.
// The rows are independent, so a pass is cut into `parts` blocks of whole image rows i and each
// block runs the WHOLE pass on one thread (at::parallel_for), with the same tensor operations
// as the Python pass on the block's rows: single-threaded matrix products on row blocks instead
// of ~100 small operations from Python, each too small to use two threads. A row's numbers do not
// depend on the blocks (the tests compare the samples and the coded bytes with the Python pass).
//
//   wave_pass(kind, bufs, weights, step, first, head, layer, draws, T, keep) -> logits (S*n, P);
//     or, with draws = [u (S*n, 1), the Chooser's values slab (S, n), the embedding table] and
//     keep = [colour, E's step offset], the values drawn from them as draw() does, kept in the
//     slab and embedded in E (nothing returned); or nothing (no logits needed)
//     kind 0: PixelCNN (sampling/pixelcnn.py, PixelCNNWavefrontEngine)
//     kind 1: Row LSTM (sampling/row_lstm.py, RowLSTMWavefrontEngine)
//     bufs    = [E, head t0, head t1, engine buffers...]
//     weights = [first w, first b, head1 w, head1 b, head2 w, head2 b, per layer...]
//     step    = [t, lo, hi, s, n, parts, need the logits, align (see Step)]
//     first   = [E's strides (4), r, kw, C, output columns lo, hi]       (sampling/parts.py)
//     head    = [colour slices, head1 reach k, columns lo, hi, head2 reach]
//     layer   = the engine's geometry and column groups (see each engine below)
//   draw(logits, u, temperature, parts) -> values: the Chooser's inverse-CDF draw on row blocks.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/div.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/searchsorted.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/tanh.h>
#include <torch/library.h>

#include "fastmath.h"

#include <algorithm>
#include <cstring>
#include <vector>

extern "C" {  // BLAS, as torch's CPU library exports it (weak: absent, the Python pass runs)
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace {

using idx = int64_t;
using at::Tensor;

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

Cols cols_at(at::IntArrayRef v, idx at) { return {v[at], v[at + 1], v[at + 2]}; }

// Column-major C (m × n) += A (m × k) B (k × n): the BLAS call torch's addmm makes.
void gemm(idx m, idx n, idx k, const float* a, idx lda, const float* b, idx ldb, float* c, idx ldc) {
  const int M = m, N = n, K = k, LA = lda, LB = ldb, LC = ldc;
  const float one = 1;
  sgemm_("N", "N", &M, &N, &K, &one, a, &LA, b, &LB, &one, c, &LC);
}
void gemm(idx m, idx n, idx k, const double* a, idx lda, const double* b, idx ldb, double* c, idx ldc) {
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
// at multiples of `align` image rows (see Step::align).
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

// align: the blocks start at multiples of this many image rows. torch's vectorized element-wise
// kernels treat the last elements of a contiguous range apart (a scalar loop, whose sigmoid can
// differ in the last bit); a block that starts at a multiple of 64 elements of the step's buffers
// and does not end the step has no such elements, so every element gets the arithmetic of the
// Python pass, which runs each operation on the whole step.
struct Step {
  idx t, lo, hi, s, n, parts, align;
  bool need;
  explicit Step(at::IntArrayRef v)
      : t(v[0]), lo(v[1]), hi(v[2]), s(v[3]), n(v[4]), parts(v[5]), align(v[7]), need(v[6] != 0) {}
  idx S() const { return hi - lo + 1; }
};

// The first k×k mask-A conv (parts.py, SkewedFirstConv.pixel): the block's k×k neighbourhoods, a
// strided view of the skewed embedded image E, gathered; out[:, lo:hi] = taps @ w + b.
template <typename T>
void first_conv(const Block& b, const Step& st, const Tensor& E, const Tensor& w, const Tensor& bias,
                at::IntArrayRef g, Mat<T> out) {
  const idx sT = g[0], sI = g[1], sN = g[2], sC = g[3], r = g[4], kw = g[5], C = g[6], K = (r + 1) * kw * C;
  std::vector<T> taps(b.rows() * K);
  const T* e = E.data_ptr<T>();
  for (idx u = 0; u < b.units(); ++u)
    for (idx j = 0; j < b.n; ++j) {
      T* q = taps.data() + (u * b.n + j) * K;
      const T* base = e + st.t * sT + (st.lo + b.u0 + u) * sI + j * sN;
      for (idx a = 0; a < r + 1; ++a)
        for (idx d = 0; d < kw; ++d)
          for (idx c = 0; c < C; ++c) *q++ = base[a * (st.s * sT + sI) + d * sT + c * sC];
    }
  linear(out.columns(g[7], g[8]), Mat<T>{taps.data(), b.rows(), K, K}, w.data_ptr<T>(), bias.data_ptr<T>());
}

// The output head (parts.py, Head): with colour slices, group [lo, hi) of its hidden layer from
// the stream's first k columns, then (when needed) the logits from the first `reach` hidden
// units; without, the whole hidden layer and the logits.
template <typename T>
void head(const Block& b, const Step& st, Mat<T> stream, const Tensor& T0, const Tensor& T1, const Tensor* w,
          at::IntArrayRef g, const Tensor& logits) {
  if (!g[0] && !st.need) return;  // no colour slices: the hidden layer only for the logits
  Mat<T> t0 = b.mat<T>(T0), t1 = b.mat<T>(T1);
  relu_into(t0.columns(0, g[1]), stream.columns(0, g[1]));
  relu_(linear(t1, t0, w[0], w[1], cols_at(g, 1)));
  if (st.need) linear(b.mat<T>(logits), t1.columns(0, g[4]), w[2].data_ptr<T>(), w[3].data_ptr<T>());
}

// PixelCNN blocks (pixelcnn.py, PixelCNNWavefrontEngine.step). bufs: Y (R, L, H + r, n, h) the
// ring of the k×k convs' inputs, X (L + 1, >= S*n, 2h), T1 (>= S*n, 2h), Q (L, >= S, n, F), Z (L,
// >= S*n, h), ctx (S, n, c) or empty, total (>= S*n, .) the skip sum or empty. Weights per layer:
// reduce, taps, expand (w, b each) [, skip (w, b)]. layer: r, rw, R, gather (the first pass of the
// step: gather every tap; later ones copy the centre tap's new group), the Cols of reduce, taps,
// expand, skip, then the taps' (a, d) pairs. Returns the block's rows of the stream for the head.
template <typename T>
Mat<T> pixelcnn_blocks(const Block& b, const Step& st, at::TensorList bufs, const Tensor* weights,
                       at::IntArrayRef g) {
  const Tensor &Y = bufs[0], &X = bufs[1], &T1 = bufs[2], &Q = bufs[3], &Z = bufs[4], &ctx = bufs[5];
  const Tensor& total = bufs[6];
  const idx r = g[0], rw = g[1], R = g[2], ntaps = (static_cast<idx>(g.size()) - 16) / 2;
  const bool gather = g[3] != 0, skips = total.numel() > 0;
  const Cols red = cols_at(g, 4), tap = cols_at(g, 7), ex = cols_at(g, 10), sk = cols_at(g, 13);
  const idx L = Y.size(1), n = b.n, h = Y.size(4), centre = (ntaps - 1) * h, per = skips ? 8 : 6;
  const idx t = st.t, rows = b.rows(), m = b.units(), F = Q.size(3);
  Mat<T> t1 = b.mat<T>(T1), tot = skips ? b.mat<T>(total) : Mat<T>{};
  for (idx l = 0; l < L; ++l) {
    const Tensor* w = weights + l * per;
    Mat<T> x = b.mat<T>(X, {l}), xn = b.mat<T>(X, {l + 1}), z = b.mat<T>(Z, {l});
    Mat<T> q = rows_of<T>(Q, {l}, b.first(), rows);
    Mat<T> y = rows_of<T>(Y, {t % R, l}, (st.lo + b.u0 + r) * n, rows);  // the centre tap
    relu_into(t1.columns(0, red.k), x.columns(0, red.k));
    Mat<T> fresh = relu_(linear(y, t1, w[0], w[1], red));
    if (gather) {  // q = [the taps' slabs | context]
      for (idx a_d = 0; a_d < ntaps; ++a_d) {
        const idx a = g[16 + 2 * a_d], d = g[17 + 2 * a_d];
        const idx slot = ((t + st.s * (a - r) + d - rw) % R + R) % R;
        copy_into(q.columns(a_d * h, (a_d + 1) * h), rows_of<T>(Y, {slot, l}, (st.lo + a + b.u0) * n, rows));
      }
      if (ctx.numel() > 0) {
        const idx cw = ctx.size(2);
        for (idx u = 0; u < m; ++u)  // the context slab's rows are not evenly spaced
          copy_into(Mat<T>{q.row(u * n) + ntaps * h, n, cw, F},
                    Mat<T>{ctx.data_ptr<T>() + (b.u0 + u) * ctx.stride(0), n, cw, ctx.stride(1)});
      }
    } else {
      copy_into(q.columns(centre + red.lo, centre + red.hi), fresh);
    }
    relu_(linear(z, q, w[2], w[3], tap));
    add_row_(linear(xn, z, w[4], w[5], ex, &x), w[5].data_ptr<T>());
    if (skips) linear(tot, xn, w[6], w[7], sk, l == 0 ? nullptr : &tot);
  }
  return skips ? tot : b.mat<T>(X, {L});
}

// A tensor over a Mat's numbers (no copy), for the tensor operations below.
template <typename T>
Tensor tensor_of(Mat<T> m) {
  return at::from_blob(m.p, {m.rows, m.cols}, {m.ld, 1}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

// The element-wise LSTM step (parts.py, LSTMActivation.step_), in place: gates a = [o f i | g] (k
// columns each); `fast`: tanh(x) = 2 sigmoid(2x) - 1, the g columns of the weights already doubled.
// torch's own sigmoid, tanh and addcmul (their vectorized arithmetic is what the Python pass
// computes), loops for the rest: single roundings (2x and x * y), so the same numbers.
template <typename T>
void lstm_step(Mat<T> a, bool fast, Mat<T> c_prev, Mat<T> c, Mat<T> t, Mat<T> h) {
  const idx k = c.cols;
  Mat<T> o = a.columns(0, k), f = a.columns(k, 2 * k), i = a.columns(2 * k, 3 * k), g = a.columns(3 * k, 4 * k);
  if (fast) {
    tensor_of(a).sigmoid_();
    for (idx r = 0; r < g.rows; ++r)
      for (idx j = 0; j < k; ++j) g.row(r)[j] = g.row(r)[j] * 2 - 1;
  } else {
    tensor_of(a.columns(0, 3 * k)).sigmoid_();
    tensor_of(g).tanh_();
  }
  for (idx r = 0; r < c.rows; ++r)
    for (idx j = 0; j < k; ++j) c.row(r)[j] = f.row(r)[j] * c_prev.row(r)[j];
  tensor_of(c).addcmul_(tensor_of(i), tensor_of(g));
  if (fast) {
    for (idx r = 0; r < t.rows; ++r)
      for (idx j = 0; j < k; ++j) t.row(r)[j] = c.row(r)[j] * 2;
    tensor_of(t).sigmoid_();
    for (idx r = 0; r < t.rows; ++r)
      for (idx j = 0; j < k; ++j) t.row(r)[j] = t.row(r)[j] * 2 - 1;
  } else {
    Tensor tt = tensor_of(t);
    at::tanh_out(tt, tensor_of(c));
  }
  for (idx r = 0; r < h.rows; ++r)
    for (idx j = 0; j < k; ++j) h.row(r)[j] = o.row(r)[j] * t.row(r)[j];
}

// Row LSTM blocks (row_lstm.py, RowLSTMWavefrontEngine.colour_step). bufs: X (2, L + 1, H, n, 2h)
// the layer inputs by step parity, Hh (RH, L, H + 1, n, h) and Cc (RC, L, H + 1, n, h) the rings of
// h and c (row i at index i + 1), U (L, >= S, n, 7h + c) the gathered inputs, A (>= S*n, 4 h_c) the
// gates, Tc (>= S*n, h) scratch, ctx (S, n, c) or empty, total the skip sum or empty. Weights
// per layer: gates (w, b), output conv (w, b) [, skip (w, b)]. layer: gather, fast, hidden group
// [lo, hi), stream group [lo, hi), the output conv's and the skip's Cols.
template <typename T>
Mat<T> row_lstm_blocks(const Block& b, const Step& st, at::TensorList bufs, const Tensor* weights,
                       at::IntArrayRef g) {
  const Tensor &X = bufs[0], &Hh = bufs[1], &Cc = bufs[2], &U = bufs[3], &A = bufs[4], &Tc = bufs[5];
  const Tensor &ctx = bufs[6], &total = bufs[7];
  const bool gather = g[0] != 0, fast = g[1] != 0, skips = total.numel() > 0;
  const idx hlo = g[2], hhi = g[3], slo = g[4], shi = g[5], k = hhi - hlo;
  const Cols out = cols_at(g, 6), sk = cols_at(g, 9);
  const idx L = Hh.size(1), h = Hh.size(4), RH = Hh.size(0), RC = Cc.size(0), per = skips ? 6 : 4;
  const idx t = st.t, s = st.s, n = b.n, rows = b.rows(), i0 = st.lo + b.u0, m = b.units();
  auto ring = [](idx v, idx R) { return ((v % R) + R) % R; };
  Mat<T> a = b.mat<T>(A), tc = b.mat<T>(Tc).columns(0, k);
  Mat<T> tot = skips ? b.mat<T>(total) : Mat<T>{};
  const idx now = ring(t, 2), left = ring(t - 1, 2);
  for (idx l = 0; l < L; ++l) {
    const Tensor* w = weights + l * per;
    Mat<T> uv = rows_of<T>(U, {l}, b.first(), rows), xc = rows_of<T>(X, {now, l}, i0 * n, rows);
    if (gather) {  // [h(i-1, j-1) | h(i-1, j) | h(i-1, j+1) | x(i, j-1) | x(i, j) (| context)]
      const idx above[3] = {ring(t - s - 1, RH), ring(t - s, RH), ring(t - s + 1, RH)};
      for (idx q = 0; q < 3; ++q)
        copy_into(uv.columns(q * h, (q + 1) * h), rows_of<T>(Hh, {above[q], l}, i0 * n, rows));
      copy_into(uv.columns(3 * h, 5 * h), rows_of<T>(X, {left, l}, i0 * n, rows));
      copy_into(uv.columns(5 * h, 7 * h), xc);
      if (ctx.numel() > 0) {
        const idx cw = ctx.size(2);
        for (idx u = 0; u < m; ++u)  // the context slab's rows are not evenly spaced
          copy_into(Mat<T>{uv.row(u * n) + 7 * h, n, cw, uv.ld},
                    Mat<T>{ctx.data_ptr<T>() + (b.u0 + u) * ctx.stride(0), n, cw, ctx.stride(1)});
      }
    } else {
      copy_into(uv.columns(5 * h + slo, 5 * h + shi), xc.columns(slo, shi));
    }
    linear(a, uv, w[0].data_ptr<T>(), w[1].data_ptr<T>());
    Mat<T> hc = rows_of<T>(Hh, {ring(t, RH), l}, (i0 + 1) * n, rows);
    Mat<T> c_up = rows_of<T>(Cc, {ring(t - s, RC), l}, i0 * n, rows);
    Mat<T> c_cur = rows_of<T>(Cc, {ring(t, RC), l}, (i0 + 1) * n, rows);
    lstm_step(a, fast, c_up.columns(hlo, hhi), c_cur.columns(hlo, hhi), tc, hc.columns(hlo, hhi));
    Mat<T> xn = rows_of<T>(X, {now, l + 1}, i0 * n, rows);
    add_row_(linear(xn, hc, w[2], w[3], out, &xc), w[3].data_ptr<T>());
    if (skips) linear(tot, xn, w[4], w[5], sk, l == 0 ? nullptr : &tot);
  }
  return skips ? tot : rows_of<T>(X, {now, L}, i0 * n, rows);
}

// exp(x) for x <= 0 in float64, as 2^n e^r with |r| <= ln2 / 2 (Cody-Waite split of ln 2, degree-13
// Taylor polynomial: within ~2 ulp), branch-free so that loops calling it vectorize; below -708
// (where exp leaves the normal numbers) it gives exp(-708), a difference far below what a draw
// can see (u is 0 or at least 2^-24).
inline double exp_neg(double x) {
  x = x < -708.0 ? -708.0 : x;
  const double n = __builtin_nearbyint(x * 1.4426950408889634);
  const double r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The Chooser's draw (sampling/chooser.py) of one row of L logits: the number of entries of the
// float64 cumulative softmax(z) that are < u, at most L - 1; z = logits, or (logits - max) / T.
// Its own float64 arithmetic (the exponentials above, sums in blocks of 16): the same values as
// the Python draw except where u lies within float64 rounding of a cumulative probability.
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

// The values drawn for a block: into the Chooser's (S, n) slab of the colour's values, and their
// embedding into the skewed image E that the first conv reads (parts.py, SkewedFirstConv.set_value:
// E[t + off, i + r, image, c] = table[value]).
template <typename T>
void keep_values(const Block& b, const Step& st, const int64_t* v, const Tensor& values, const Tensor& table,
                 const Tensor& E, at::IntArrayRef first, at::IntArrayRef keep) {
  const idx sT = first[0], sI = first[1], sN = first[2], sC = first[3], r = first[4], c = keep[0], off = keep[1];
  int64_t* into = values.data_ptr<int64_t>();
  const T* tab = table.data_ptr<T>();
  T* e = E.data_ptr<T>() + (st.t + off) * sT + c * sC;
  for (idx u = 0; u < b.units(); ++u) {
    const idx i = st.lo + b.u0 + u;
    for (idx j = 0; j < b.n; ++j) {
      const int64_t val = v[u * b.n + j];
      into[(b.u0 + u) * values.stride(0) + j * values.stride(1)] = val;
      e[(i + r) * sI + j * sN] = tab[val];
    }
  }
}

template <typename T>
void run_pass(idx kind, const Step& st, at::TensorList bufs, at::TensorList weights, at::IntArrayRef first,
              at::IntArrayRef head_g, at::IntArrayRef layer, const Tensor& logits, at::TensorList draws,
              double temperature, at::IntArrayRef keep) {
  const Tensor &E = bufs[0], &T0 = bufs[1], &T1 = bufs[2];
  at::TensorList engine = bufs.slice(3);
  std::vector<int64_t> drawn(draws.empty() ? 0 : st.S() * st.n);
  for_blocks(st.S(), st.n, st.parts, [&](const Block& b) {
    // the first conv's output: PixelCNN X[0, :N]; Row LSTM X[t % 2, 0, lo:hi + 1]
    Mat<T> x0 = kind == 0 ? b.mat<T>(engine[1], {0})
                          : rows_of<T>(engine[0], {st.t % 2, 0}, (st.lo + b.u0) * st.n, b.rows());
    first_conv(b, st, E, weights[0], weights[1], first, x0);
    Mat<T> stream = kind == 0 ? pixelcnn_blocks<T>(b, st, engine, weights.data() + 6, layer)
                              : row_lstm_blocks<T>(b, st, engine, weights.data() + 6, layer);
    head(b, st, stream, T0, T1, weights.data() + 2, head_g, logits);
    if (!draws.empty()) {
      int64_t* v = drawn.data() + b.first();
      draw_rows(b.mat<T>(logits), draws[0].data_ptr<double>() + b.first(), temperature, v);
      keep_values<T>(b, st, v, draws[1], draws[2], E, first, keep);
    }
  }, st.align);
}

bool blas() { return sgemm_ != nullptr && dgemm_ != nullptr; }

Tensor wave_pass(int64_t kind, at::TensorList bufs, at::TensorList weights, at::IntArrayRef step,
                 at::IntArrayRef first, at::IntArrayRef head_g, at::IntArrayRef layer, at::TensorList draws,
                 double temperature, at::IntArrayRef keep) {
  TORCH_CHECK(blas(), "wave_pass: torch's CPU library does not export BLAS (sgemm_, dgemm_)");
  TORCH_CHECK(kind == 0 || kind == 1, "wave_pass: kind 0 (PixelCNN) or 1 (Row LSTM) expected");
  TORCH_CHECK(step.size() == 8 && step[7] >= 1 && first.size() == 9 && head_g.size() == 5,
              "wave_pass: bad geometry");
  const Tensor& E = bufs[0];
  for (const Tensor& b : bufs.slice(1))
    TORCH_CHECK(b.numel() == 0 || b.scalar_type() == E.scalar_type(), "wave_pass: one dtype expected");
  for (const Tensor& w : weights)
    TORCH_CHECK(w.is_contiguous() && w.scalar_type() == E.scalar_type(), "wave_pass: contiguous weights expected");
  const Step st(step);
  const idx N = st.S() * st.n;
  TORCH_CHECK(draws.empty() || (st.need && draws.size() == 3 && keep.size() == 2 && draws[0].size(0) == N &&
                                draws[0].is_contiguous() && draws[0].scalar_type() == at::kDouble &&
                                draws[1].scalar_type() == at::kLong && draws[1].size(0) == st.S() &&
                                draws[2].scalar_type() == E.scalar_type()),
              "wave_pass: draws [u (S*n, 1) float64, values (S, n) int64, table] expected with the logits");
  Tensor logits = st.need ? at::empty({N, weights[4].size(1)}, E.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "pixelrnn_wave_pass", [&] {
    run_pass<scalar_t>(kind, st, bufs, weights, first, head_g, layer, logits, draws, temperature, keep);
  });
  return st.need && draws.empty() ? logits : at::empty({0}, E.options());
}

// One image's LSTM step with the native rows' own arithmetic (fastmath.h): gates a = [o f i | g],
// k columns each (`fast`: g's pre-activation doubled, tanh(x) = 2 sigmoid(2x) - 1); c = f c_prev +
// i g into c, h = o tanh(c) into h. Branch-free loops, so that they vectorize; g: k scratch values.
template <typename T>
inline void lstm_cell(const T* a, idx k, bool fast, const T* c_prev, T* c, T* h, T* g) {
  using pixelrnn_native::sigm;
  using pixelrnn_native::tanh2;
  if (fast)
    for (idx q = 0; q < k; ++q) g[q] = T(2) * sigm(a[3 * k + q]) - T(1);
  else
    for (idx q = 0; q < k; ++q) g[q] = tanh2(a[3 * k + q]);
  for (idx q = 0; q < k; ++q) c[q] = sigm(a[k + q]) * c_prev[q] + sigm(a[2 * k + q]) * g[q];
  for (idx q = 0; q < k; ++q) h[q] = sigm(a[q]) * tanh2(c[q]);
}

// The Diagonal BiLSTM's raster-order sampler (sampling/diagonal_bilstm.py, core._raster) over one
// whole row i whose values are all plain draws: for every pixel j and colour c, the first conv's
// pixel (parts.FirstConv.pixel), the left-to-right step of every layer (DiagonalBiLSTMEngine.pixel),
// the head, the draw (as draw() does), and the value kept and embedded for the next passes. The
// images are independent, so each thread runs the whole row for a block of them. Unlike the
// wavefront pass this one has its own element-wise arithmetic (the LSTM's sigmoid and tanh from
// fastmath.h): its numbers differ from the Python pass's in the last bits, so it is used for
// sampling only (never for coding), and the tests check its draws against the model's exact
// conditionals instead.
//   bufs    = [erow (n, W + rw, C), above (n, W, 2h), XH (L + 1, W + 2, n, 3h), Cl (L, W + 1, n, h),
//              UP (L, W, n, 4h), R (L, W, n, 2h), total (n, .) or empty, head t0 (n, 2h),
//              head t1 (n, .), u (C, H, W, n) float64, values (C, H, W, n) int64, table]
//   weights = per colour pass: [first conv w (or empty)] + per layer [gates w, output w (, skip
//             w, b)] + [head1 w, b, head2 w, b]
//   geo     = [i, passes, rw, cols (left taps of the first conv), fast, threads] + per pass
//             [first lo, hi, hidden lo, hi, stream lo, hi, output reach, skip k, lo, hi, head k,
//             lo, hi, reach]
template <typename T>
void diag_row_block(idx b0, idx b1, at::TensorList bufs, at::TensorList weights, at::IntArrayRef geo,
                    double temperature) {
  const Tensor &erow = bufs[0], &above = bufs[1], &XH = bufs[2], &Cl = bufs[3], &UP = bufs[4], &R = bufs[5];
  const Tensor &total = bufs[6], &T0 = bufs[7], &T1 = bufs[8], &U = bufs[9], &V = bufs[10], &table = bufs[11];
  const idx i = geo[0], passes = geo[1], rw = geo[2], cols = geo[3];
  const bool fast = geo[4] != 0, skips = total.numel() > 0;
  const idx L = Cl.size(0), W = Cl.size(1) - 1, n = Cl.size(2), h = Cl.size(3), C = erow.size(2);
  const idx H = U.size(1), rows = b1 - b0, per = skips ? 4 : 2, nw = 1 + L * per + 4;
  std::vector<T> gates(rows * 4 * h), gtmp(h);
  auto rowsof = [&](const Tensor& t, std::initializer_list<idx> lead) {  // the block's images of t[lead]
    Mat<T> m = rows_of<T>(t, lead, 0, n);
    return Mat<T>{m.row(b0), rows, m.cols, m.ld};
  };
  Mat<T> er{erow.data_ptr<T>() + b0 * erow.stride(0), rows, erow.size(1) * C, erow.stride(0)};
  Mat<T> tot = skips ? rowsof(total, {}) : Mat<T>{}, t0 = rowsof(T0, {}), t1 = rowsof(T1, {});
  const T* tab = table.data_ptr<T>();
  const idx P = weights[nw - 2].size(1);
  std::vector<T> logits(rows * P);
  std::vector<double> e(P + (P + kDrawBlock - 1) / kDrawBlock);
  for (idx j = 0; j < W; ++j) {
    for (idx c = 0; c < passes; ++c) {
      const int64_t* g = geo.data() + 6 + 14 * c;
      const Tensor* w = weights.data() + nw * c;
      // the first conv at (i, j), group [g0, g1): the rows above (with the bias), then the left taps
      Mat<T> x0 = rowsof(XH, {0, j + 1}).columns(g[0], g[1]);
      Mat<T> ab = Mat<T>{above.data_ptr<T>() + b0 * above.stride(0) + j * above.stride(1), rows, above.size(2),
                         above.stride(0)}.columns(g[0], g[1]);
      const T* no_bias = nullptr;
      if (cols > 0)
        linear(x0, Mat<T>{er.p + j * C, rows, cols * C, er.ld}, w[0].data_ptr<T>(), no_bias, &ab);
      else
        copy_into(x0, ab);
      const idx hlo = g[2], hhi = g[3], slo = g[4], shi = g[5], kout = g[6], k = hhi - hlo;
      Mat<T> a{gates.data(), rows, 4 * k, 4 * k};
      for (idx l = 0; l < L; ++l) {
        const Tensor* wl = w + 1 + l * per;
        Mat<T> up = rowsof(UP, {l, j}).columns(4 * hlo, 4 * hhi), xh = rowsof(XH, {l, j + 1});
        linear(a, xh, wl[0].data_ptr<T>(), no_bias, &up);
        Mat<T> c_prev = rowsof(Cl, {l, j}).columns(hlo, hhi), c_cur = rowsof(Cl, {l, j + 1}).columns(hlo, hhi);
        Mat<T> hcur = rowsof(XH, {l, j + 2}).columns(2 * h, 3 * h);
        for (idx r = 0; r < rows; ++r)  // the LSTM step
          lstm_cell(a.row(r), k, fast, c_prev.row(r), c_cur.row(r), hcur.row(r) + hlo, gtmp.data());
        // the block's output, group [slo, shi): x + the shifted right-to-left term + h @ w_out
        Mat<T> xl = rowsof(XH, {l, j + 1}).columns(slo, shi), rr = rowsof(R, {l, j}).columns(slo, shi);
        Mat<T> xn = rowsof(XH, {l + 1, j + 1});
        Mat<T> xg = xn.columns(slo, shi);
        for (idx r = 0; r < rows; ++r)
          for (idx q = 0; q < xg.cols; ++q) xg.row(r)[q] = xl.row(r)[q] + rr.row(r)[q];
        if (kout > 0) gemm(xg.cols, rows, kout, wl[1].data_ptr<T>(), xg.cols, hcur.p, hcur.ld, xg.p, xg.ld);
        if (skips) {
          const Cols sk{g[7], g[8], g[9]};
          Mat<T> sg = tot.columns(sk.lo, sk.hi);
          linear(sg, xn.columns(0, 2 * h).columns(0, sk.k), wl[2].data_ptr<T>(), wl[3].data_ptr<T>(),
                 l == 0 ? nullptr : &sg);
        }
      }
      Mat<T> stream = skips ? tot : rowsof(XH, {L, j + 1}).columns(0, 2 * h);
      const Tensor* wh = w + 1 + L * per;  // the head: group [lo, hi) of its hidden layer, the logits
      relu_into(t0.columns(0, g[10]), stream.columns(0, g[10]));
      relu_(linear(t1.columns(g[11], g[12]), t0.columns(0, g[10]), wh[0].data_ptr<T>(), wh[1].data_ptr<T>()));
      Mat<T> lg{logits.data(), rows, P, P};
      linear(lg, t1.columns(0, g[13]), wh[2].data_ptr<T>(), wh[3].data_ptr<T>());
      const idx at = ((c * H + i) * W + j) * n + b0;  // (c, i, j, image b0) of u and the values
      const double* u = U.data_ptr<double>() + at;
      int64_t* v = V.data_ptr<int64_t>() + at;
      for (idx r = 0; r < rows; ++r) {
        v[r] = draw_row(lg.row(r), P, u[r], temperature, e.data());
        er.row(r)[(j + rw) * C + c] = tab[v[r]];
      }
    }
  }
}

void diag_row(at::TensorList bufs, at::TensorList weights, at::IntArrayRef geo, double temperature) {
  TORCH_CHECK(blas(), "diag_row: torch's CPU library does not export BLAS (sgemm_, dgemm_)");
  TORCH_CHECK(bufs.size() == 12 && geo.size() == static_cast<size_t>(6 + 14 * geo[1]), "diag_row: bad arguments");
  const Tensor& E = bufs[0];
  for (const Tensor& w : weights)
    TORCH_CHECK(w.numel() == 0 || (w.is_contiguous() && w.scalar_type() == E.scalar_type()),
                "diag_row: contiguous weights of the model's dtype expected");
  const idx n = bufs[3].size(2);
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "pixelrnn_diag_row", [&] {
    for_blocks(n, 1, geo[5], [&](const Block& b) {
      diag_row_block<scalar_t>(b.u0, b.u1, bufs, weights, geo, temperature);
    });
  });
}

// The Diagonal BiLSTM's right-to-left scan over a finished row (DiagonalBiLSTMEngine.end_row, the
// loop over the columns), every layer, with diag_row's arithmetic: for j = W - 1 .. 0, the gates
// PRE[:, j] + h(i, j + 1) @ w_left, then the LSTM step into Hr[:, j] and Cr[:, j] (column W: zero).
// PRE (L, W, n, 4h), Hr and Cr (L, W + 1, n, h), w_left (L, h, 4h); `fast`: the g columns doubled.
template <typename T>
void diag_scan_block(idx b0, idx b1, const Tensor& PRE, const Tensor& Hr, const Tensor& Cr, const Tensor& wl,
                     bool fast) {
  const idx L = PRE.size(0), W = PRE.size(1), n = PRE.size(2), h = Hr.size(3), rows = b1 - b0;
  std::vector<T> gates(rows * 4 * h), gtmp(h);
  Mat<T> a{gates.data(), rows, 4 * h, 4 * h};
  auto block = [&](const Tensor& t, idx l, idx j) {
    Mat<T> m = rows_of<T>(t, {l, j}, 0, n);
    return Mat<T>{m.row(b0), rows, m.cols, m.ld};
  };
  for (idx j = W - 1; j >= 0; --j)
    for (idx l = 0; l < L; ++l) {
      Mat<T> pre = block(PRE, l, j), c_right = block(Cr, l, j + 1), c = block(Cr, l, j), hj = block(Hr, l, j);
      linear(a, block(Hr, l, j + 1), wl.data_ptr<T>() + l * h * 4 * h, static_cast<const T*>(nullptr), &pre);
      for (idx r = 0; r < rows; ++r) lstm_cell(a.row(r), h, fast, c_right.row(r), c.row(r), hj.row(r), gtmp.data());
    }
}

void diag_scan(const Tensor& PRE, const Tensor& Hr, const Tensor& Cr, const Tensor& w_left, bool fast,
               int64_t threads) {
  TORCH_CHECK(blas(), "diag_scan: torch's CPU library does not export BLAS (sgemm_, dgemm_)");
  for (const Tensor* t : {&PRE, &Hr, &Cr, &w_left})
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == PRE.scalar_type(), "diag_scan: contiguous tensors expected");
  AT_DISPATCH_FLOATING_TYPES(PRE.scalar_type(), "pixelrnn_diag_scan", [&] {
    for_blocks(PRE.size(2), 1, threads,
               [&](const Block& b) { diag_scan_block<scalar_t>(b.u0, b.u1, PRE, Hr, Cr, w_left, fast); });
  });
}

Tensor draw(const Tensor& logits, const Tensor& u, double temperature, int64_t parts) {
  TORCH_CHECK(logits.dim() == 2 && u.dim() == 2 && u.size(0) == logits.size(0) && u.size(1) == 1,
              "draw: logits (N, L) and u (N, 1) expected");
  TORCH_CHECK(u.scalar_type() == at::kDouble, "draw: float64 u expected");
  Tensor lg = logits.contiguous(), uu = u.contiguous();
  Tensor v = at::empty({lg.size(0), 1}, lg.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(lg.scalar_type(), "pixelrnn_draw", [&] {
    for_blocks(lg.size(0), 1, parts, [&](const Block& b) {
      draw_rows(b.mat<scalar_t>(lg), uu.data_ptr<double>() + b.first(), temperature,
                v.data_ptr<int64_t>() + b.first());
    });
  });
  return v;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn_native, m) {
  m.def("wave_pass(int kind, Tensor[] bufs, Tensor[] weights, int[] step, int[] first, int[] head, "
        "int[] layer, Tensor[] draws, float temperature, int[] keep) -> Tensor");
  m.def("draw(Tensor logits, Tensor u, float temperature, int parts) -> Tensor");
  m.def("diag_row(Tensor[] bufs, Tensor[] weights, int[] geo, float temperature) -> ()");
  m.def("diag_scan(Tensor PRE, Tensor Hr, Tensor Cr, Tensor w_left, bool fast, int threads) -> ()");
  m.def("sampling_blas() -> bool", &blas);
}

TORCH_LIBRARY_IMPL(pixelrnn_native, CPU, m) {
  m.impl("wave_pass", &wave_pass);
  m.impl("draw", &draw);
  m.impl("diag_row", &diag_row);
  m.impl("diag_scan", &diag_scan);
}
