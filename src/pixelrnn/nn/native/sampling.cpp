// The cached samplers' wavefront pass and value draw as native calls (pixelrnn.sampling).
//
// The wavefront schedule (sampling/core.py) runs the network on the S pixels of a step,
// (i, t - s*i) for i = lo..hi, as matrices of S*n rows (row-major over (i, image)); one pass per
// colour computes the first k×k conv, every residual block and the output head for those rows.
// The rows are independent, so a call cuts them into `parts` blocks of whole image rows i and each
// block runs the whole pass (or all colour passes of the step) on one thread (at::parallel_for):
// the matrix products as the BLAS calls torch's addmm makes, the element-wise steps as loops of
// the same single roundings, the LSTM's sigmoid and tanh as torch's own operations, in place of
// ~100 small operations from Python, each too small to use two threads. A row's numbers are the
// Python pass's, whatever the blocks (the tests compare samples, logits and coded bytes).
//
//   wave_pass(kind, bufs, weights, step, first, head, layer, draws, T, keep) -> logits (S*n, P) of
//     one pass; or, with draws = [u (S*n, 1), the Chooser's values slab (S, n)] per pass + [the
//     embedding table] and keep = [colour, E's step offset] per pass, the values drawn as draw()
//     does, kept in the slabs and embedded in E, pass after pass (nothing returned); or nothing
//     (no logits needed). The lists hold each pass's part in turn:
//     kind 0: PixelCNN (sampling/pixelcnn.py, PixelCNNWavefrontEngine)
//     kind 1: Row LSTM (sampling/row_lstm.py, RowLSTMWavefrontEngine)
//     bufs    = [E, head t0, head t1, engine buffers...] (the same for every pass)
//     weights = [first w, first b, head1 w, head1 b, head2 w, head2 b, per layer...] per pass
//     step    = [t, lo, hi, s, n, parts, need the logits, align (see Step), passes]
//     first   = [E's strides (4), r, kw, C, output columns lo, hi] per pass   (sampling/parts.py)
//     head    = [colour slices, head1 reach k, columns lo, hi, head2 reach] per pass
//     layer   = the engine's geometry and column groups per pass (see each engine below)
//   draw(logits, u, temperature, parts) -> values: the Chooser's inverse-CDF draw on row blocks.
//   sampling_blas() -> whether torch exports the BLAS calls these need.
// The Diagonal BiLSTM's rows: diagonal.cpp; what both share: sampling.h.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/tanh.h>
#include <torch/library.h>

#include "sampling.h"

namespace {

using namespace pixelrnn_native;

// align: the blocks start at multiples of this many image rows. torch's vectorized element-wise
// kernels treat the last elements of a contiguous range apart (a scalar loop, whose sigmoid can
// differ in the last bit); a block that starts at a multiple of 64 elements of the step's buffers
// and does not end the step has no such elements, so every element gets the arithmetic of the
// Python pass, which runs each operation on the whole step.
struct Step {
  idx t, lo, hi, s, n, parts, align, passes;
  bool need;
  explicit Step(at::IntArrayRef v)
      : t(v[0]), lo(v[1]), hi(v[2]), s(v[3]), n(v[4]), parts(v[5]), align(v[7]), passes(v[8]),
        need(v[6] != 0) {}
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
// h and c (row i at index i + 1), U (L, >= S, n, 7h + c) the gathered inputs, ctx (S, n, c) or
// empty, total the skip sum or empty. Weights
// per layer: gates (w, b), output conv (w, b) [, skip (w, b)]. layer: gather, fast, hidden group
// [lo, hi), stream group [lo, hi), the output conv's and the skip's Cols.
template <typename T>
Mat<T> row_lstm_blocks(const Block& b, const Step& st, at::TensorList bufs, const Tensor* weights,
                       at::IntArrayRef g) {
  const Tensor &X = bufs[0], &Hh = bufs[1], &Cc = bufs[2], &U = bufs[3], &ctx = bufs[4], &total = bufs[5];
  const bool gather = g[0] != 0, fast = g[1] != 0, skips = total.numel() > 0;
  const idx hlo = g[2], hhi = g[3], slo = g[4], shi = g[5], k = hhi - hlo;
  const Cols out = cols_at(g, 6), sk = cols_at(g, 9);
  const idx L = Hh.size(1), h = Hh.size(4), RH = Hh.size(0), RC = Cc.size(0), per = skips ? 6 : 4;
  const idx t = st.t, s = st.s, n = b.n, rows = b.rows(), i0 = st.lo + b.u0, m = b.units();
  auto ring = [](idx v, idx R) { return ((v % R) + R) % R; };
  // the gates (rows, 4k) and tanh's scratch (rows, h), laid out as the Python pass's buffers
  std::vector<T> gates(rows * 4 * k), scratch(rows * h);
  Mat<T> a{gates.data(), rows, 4 * k, 4 * k}, tc = Mat<T>{scratch.data(), rows, h, h}.columns(0, k);
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
  const idx P = st.passes, nw = weights.size() / P, nl = layer.size() / P;
  std::vector<int64_t> drawn(draws.empty() ? 0 : st.S() * st.n);
  for_blocks(st.S(), st.n, st.parts, [&](const Block& b) {
    // the first conv's output: PixelCNN X[0, :N]; Row LSTM X[t % 2, 0, lo:hi + 1]
    Mat<T> x0 = kind == 0 ? b.mat<T>(engine[1], {0})
                          : rows_of<T>(engine[0], {st.t % 2, 0}, (st.lo + b.u0) * st.n, b.rows());
    for (idx p = 0; p < P; ++p) {  // the colour passes, in order (pass p + 1 reads pass p's values)
      const Tensor* w = weights.data() + p * nw;
      at::IntArrayRef fg = first.slice(9 * p, 9), lg = layer.slice(nl * p, nl);
      first_conv(b, st, E, w[0], w[1], fg, x0);
      Mat<T> stream = kind == 0 ? pixelcnn_blocks<T>(b, st, engine, w + 6, lg)
                                : row_lstm_blocks<T>(b, st, engine, w + 6, lg);
      head(b, st, stream, T0, T1, w + 2, head_g.slice(5 * p, 5), logits);
      if (!draws.empty()) {
        int64_t* v = drawn.data() + b.first();
        draw_rows(b.mat<T>(logits), draws[2 * p].data_ptr<double>() + b.first(), temperature, v);
        keep_values<T>(b, st, v, draws[2 * p + 1], draws[2 * P], E, fg, keep.slice(2 * p, 2));
      }
    }
  }, st.align);
}

// One call for `passes` colour passes of a step (step[8]; more than one only with draws).
Tensor wave_pass(int64_t kind, at::TensorList bufs, at::TensorList weights, at::IntArrayRef step,
                 at::IntArrayRef first, at::IntArrayRef head_g, at::IntArrayRef layer, at::TensorList draws,
                 double temperature, at::IntArrayRef keep) {
  TORCH_CHECK(blas(), "wave_pass: torch's CPU library does not export BLAS (sgemm_, dgemm_)");
  TORCH_CHECK(kind == 0 || kind == 1, "wave_pass: kind 0 (PixelCNN) or 1 (Row LSTM) expected");
  TORCH_CHECK(step.size() == 9 && step[7] >= 1 && step[8] >= 1, "wave_pass: bad step");
  const Step st(step);
  const idx P = st.passes, N = st.S() * st.n;
  TORCH_CHECK(first.size() == 9 * P && head_g.size() == 5 * P && layer.size() % P == 0 && weights.size() % P == 0,
              "wave_pass: bad geometry");
  const Tensor& E = bufs[0];
  for (const Tensor& b : bufs.slice(1))
    TORCH_CHECK(b.numel() == 0 || b.scalar_type() == E.scalar_type(), "wave_pass: one dtype expected");
  for (const Tensor& w : weights)
    TORCH_CHECK(w.is_contiguous() && w.scalar_type() == E.scalar_type(), "wave_pass: contiguous weights expected");
  bool ok = draws.empty() ? P == 1 : st.need && draws.size() == 2 * P + 1 && keep.size() == 2 * P &&
                                         draws[2 * P].scalar_type() == E.scalar_type();
  for (idx p = 0; ok && p < (draws.empty() ? 0 : P); ++p)
    ok = draws[2 * p].size(0) == N && draws[2 * p].is_contiguous() && draws[2 * p].scalar_type() == at::kDouble &&
         draws[2 * p + 1].scalar_type() == at::kLong && draws[2 * p + 1].size(0) == st.S();
  TORCH_CHECK(ok, "wave_pass: draws [u (S*n, 1) float64, values (S, n) int64] per pass and the table expected");
  Tensor logits = st.need ? at::empty({N, weights[4].size(1)}, E.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "pixelrnn_wave_pass", [&] {
    run_pass<scalar_t>(kind, st, bufs, weights, first, head_g, layer, logits, draws, temperature, keep);
  });
  return st.need && draws.empty() ? logits : at::empty({0}, E.options());
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
  m.def("sampling_blas() -> bool", &blas);
}

TORCH_LIBRARY_IMPL(pixelrnn_native, CPU, m) {
  m.impl("wave_pass", &wave_pass);
  m.impl("draw", &draw);
}
