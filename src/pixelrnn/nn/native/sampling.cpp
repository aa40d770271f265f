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
//   wave_pass(kind, bufs, weights, step, first, head, layer, u, T) -> logits (S*n, P), or the values
//     drawn from them (S*n, 1) when u (S*n, 1) is given (not empty), as draw() does; or empty
//     kind 0: PixelCNN (sampling/pixelcnn.py, PixelCNNWavefrontEngine)
//     kind 1: Row LSTM (sampling/row_lstm.py, RowLSTMWavefrontEngine)
//     bufs    = [E, head t0, head t1, engine buffers...]
//     weights = [first w, first b, head1 w, head1 b, head2 w, head2 b, per layer...]
//     step    = [t, lo, hi, s, n, parts, need the logits]
//     first   = [E's strides (4), r, kw, C, output columns lo, hi]       (sampling/parts.py)
//     head    = [colour slices, head1 reach k, columns lo, hi, head2 reach]
//     layer   = the engine's geometry and column groups (see each engine below)
//   draw(logits, u, temperature, parts) -> values: the Chooser's inverse-CDF draw on row blocks.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/div.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/searchsorted.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/tanh.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace {

using idx = int64_t;
using at::Tensor;

// A colour group's part of a masked layer (sampling/parts.py, ColourLinear): its output columns
// [lo, hi) read the first k inputs.
struct Cols {
  idx k, lo, hi;
};

Cols cols_at(at::IntArrayRef v, idx at) { return {v[at], v[at + 1], v[at + 2]}; }

// out[:, g] = x[:, :k] @ w + (base[:, g] if base is given, else b); returns out[:, g]
Tensor linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, Cols g,
              const Tensor* base = nullptr) {
  Tensor o = out.slice(1, g.lo, g.hi);
  at::addmm_out(o, base ? base->slice(1, g.lo, g.hi) : b, x.slice(1, 0, g.k), w);
  return o;
}

// The rows of one block: image rows lo + u0 .. lo + u1 - 1 of the step, n images each.
struct Block {
  idx u0, u1, n;
  idx units() const { return u1 - u0; }
  idx rows() const { return (u1 - u0) * n; }
  idx first() const { return u0 * n; }
  Tensor of(const Tensor& m) const { return m.narrow(0, first(), rows()); }  // (>= S*n, f) matrices
};

// Runs fn(Block) on `parts` blocks of the S image rows of a step, one per thread.
template <typename F>
void for_blocks(idx S, idx n, idx parts, const F& fn) {
  parts = std::max<idx>(1, std::min(parts, S));
  if (parts == 1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    fn(Block{0, S, n});
    return;
  }
  at::parallel_for(0, parts, 1, [&](idx p0, idx p1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    for (idx p = p0; p < p1; ++p) fn(Block{S * p / parts, S * (p + 1) / parts, n});
  });
}

struct Step {
  idx t, lo, hi, s, n, parts;
  bool need;
  explicit Step(at::IntArrayRef v)
      : t(v[0]), lo(v[1]), hi(v[2]), s(v[3]), n(v[4]), parts(v[5]), need(v[6] != 0) {}
  idx S() const { return hi - lo + 1; }
};

// The first k×k mask-A conv (parts.py, SkewedFirstConv.pixel): the block's k×k neighbourhoods are
// one strided view of the skewed embedded image E; out[:, lo:hi] = taps @ w + b.
void first_conv(const Block& b, const Step& st, const Tensor& E, const Tensor& w, const Tensor& bias,
                at::IntArrayRef g, const Tensor& out) {
  const idx sT = g[0], sI = g[1], sN = g[2], sC = g[3], r = g[4], kw = g[5], C = g[6];
  Tensor taps = E.as_strided({b.units(), b.n, r + 1, kw, C}, {sI, sN, st.s * sT + sI, sT, sC},
                             st.t * sT + (st.lo + b.u0) * sI);
  Tensor o = out.slice(1, g[7], g[8]);
  at::addmm_out(o, bias, taps.reshape({b.rows(), -1}), w);
}

// The output head (parts.py, Head): with colour slices, group [lo, hi) of its hidden layer from
// the stream's first k columns, then (when needed) the logits from the first `reach` hidden
// units; without, the whole hidden layer and the logits.
void head(const Block& b, const Step& st, const Tensor& stream, const Tensor& T0, const Tensor& T1,
          const Tensor* w, at::IntArrayRef g, const Tensor& logits) {
  if (!g[0] && !st.need) return;  // no colour slices: the hidden layer only for the logits
  Tensor t0 = b.of(T0), t1 = b.of(T1);
  Tensor t0k = t0.slice(1, 0, g[1]);
  at::clamp_min_out(t0k, stream.slice(1, 0, g[1]), 0);
  linear(t1, t0, w[0], w[1], cols_at(g, 1)).relu_();
  if (st.need) {
    Tensor out = b.of(logits);
    at::addmm_out(out, w[3], t1.slice(1, 0, g[4]), w[2]);
  }
}

// PixelCNN blocks (pixelcnn.py, PixelCNNWavefrontEngine.step). bufs: Y (R, L, H + r, n, h) the
// ring of the k×k convs' inputs, X (L + 1, >= S*n, 2h), T1 (>= S*n, 2h), Q (L, >= S, n, F), Z (L,
// >= S*n, h), ctx (S, n, c) or empty, total (>= S*n, .) the skip sum or empty. Weights per layer:
// reduce, taps, expand (w, b each) [, skip (w, b)]. layer: r, rw, R, gather (the first pass of the
// step: gather every tap; later ones copy the centre tap's new group), the Cols of reduce, taps,
// expand, skip, then the taps' (a, d) pairs. Returns the block's rows of the stream for the head.
Tensor pixelcnn_blocks(const Block& b, const Step& st, at::TensorList bufs, const Tensor* weights,
                       at::IntArrayRef g) {
  const Tensor &Y = bufs[0], &X = bufs[1], &T1 = bufs[2], &Q = bufs[3], &Z = bufs[4], &ctx = bufs[5];
  const Tensor& total = bufs[6];
  const idx r = g[0], rw = g[1], R = g[2], ntaps = (static_cast<idx>(g.size()) - 16) / 2;
  const bool gather = g[3] != 0, skips = total.numel() > 0;
  const Cols red = cols_at(g, 4), tap = cols_at(g, 7), ex = cols_at(g, 10), sk = cols_at(g, 13);
  const idx L = Y.size(1), h = Y.size(4), centre = (ntaps - 1) * h, per = skips ? 8 : 6;
  const idx t = st.t, rows = b.rows();
  Tensor t1 = b.of(T1), tot = skips ? b.of(total) : Tensor();
  for (idx l = 0; l < L; ++l) {
    const Tensor* w = weights + l * per;
    Tensor x = b.of(X[l]), xn = b.of(X[l + 1]), z = b.of(Z[l]);
    Tensor q = Q[l].narrow(0, b.u0, b.units()), qv = q.view({rows, q.size(2)});
    Tensor y = Y[t % R][l].narrow(0, st.lo + b.u0 + r, b.units()).view({rows, h});  // the centre tap
    Tensor t1k = t1.slice(1, 0, red.k);
    at::clamp_min_out(t1k, x.slice(1, 0, red.k), 0);
    Tensor fresh = linear(y, t1, w[0], w[1], red).relu_();
    if (gather) {
      std::vector<Tensor> slabs;
      for (idx m = 0; m < ntaps; ++m) {
        const idx a = g[16 + 2 * m], d = g[17 + 2 * m];
        const idx slot = ((t + st.s * (a - r) + d - rw) % R + R) % R;
        slabs.push_back(Y[slot][l].narrow(0, st.lo + a + b.u0, b.units()));
      }
      if (ctx.numel() > 0) slabs.push_back(ctx.narrow(0, b.u0, b.units()));
      at::cat_out(q, slabs, -1);
    } else {
      qv.slice(1, centre + red.lo, centre + red.hi).copy_(fresh);
    }
    linear(z, qv, w[2], w[3], tap).relu_();
    linear(xn, z, w[4], w[5], ex, &x).add_(w[5]);
    if (skips) linear(tot, xn, w[6], w[7], sk, l == 0 ? nullptr : &tot);
  }
  return skips ? tot : b.of(X[L]);
}

// The element-wise LSTM step (parts.py, LSTMActivation.step_), in place: gates a = [o f i | g];
// `fast`: tanh(x) = 2 sigmoid(2x) - 1, the g columns of the weights already doubled.
void lstm_step(Tensor a, idx k, bool fast, const Tensor& c_prev, Tensor c, Tensor t, Tensor h) {
  Tensor ofi = a.slice(1, 0, 3 * k), g = a.slice(1, 3 * k, 4 * k);
  Tensor o = a.slice(1, 0, k), f = a.slice(1, k, 2 * k), i = a.slice(1, 2 * k, 3 * k);
  if (fast) {
    a.sigmoid_();
    g.mul_(2).sub_(1);
  } else {
    ofi.sigmoid_();
    g.tanh_();
  }
  at::mul_out(c, f, c_prev);
  c.addcmul_(i, g);
  if (fast) {
    at::mul_out(t, c, 2);
    t.sigmoid_();
    t.mul_(2).sub_(1);
  } else {
    at::tanh_out(t, c);
  }
  at::mul_out(h, o, t);
}

// Row LSTM blocks (row_lstm.py, RowLSTMWavefrontEngine.colour_step). bufs: X (2, L + 1, H, n, 2h)
// the layer inputs by step parity, Hh (RH, L, H + 1, n, h) and Cc (RC, L, H + 1, n, h) the rings of
// h and c (row i at index i + 1), U (L, >= S, n, 7h + c) the gathered inputs, A (>= S*n, 4 h_c) the
// gates, Tc (>= S*n, h_c) scratch, ctx (S, n, c) or empty, total the skip sum or empty. Weights
// per layer: gates (w, b), output conv (w, b) [, skip (w, b)]. layer: gather, fast, hidden group
// [lo, hi), stream group [lo, hi), the output conv's and the skip's Cols.
Tensor row_lstm_blocks(const Block& b, const Step& st, at::TensorList bufs, const Tensor* weights,
                       at::IntArrayRef g) {
  const Tensor &X = bufs[0], &Hh = bufs[1], &Cc = bufs[2], &U = bufs[3], &A = bufs[4], &Tc = bufs[5];
  const Tensor &ctx = bufs[6], &total = bufs[7];
  const bool gather = g[0] != 0, fast = g[1] != 0, skips = total.numel() > 0;
  const idx hlo = g[2], hhi = g[3], slo = g[4], shi = g[5], k = hhi - hlo;
  const Cols out = cols_at(g, 6), sk = cols_at(g, 9);
  const idx L = Hh.size(1), h = Hh.size(4), RH = Hh.size(0), RC = Cc.size(0), per = skips ? 6 : 4;
  const idx t = st.t, s = st.s, rows = b.rows(), i0 = st.lo + b.u0, m = b.units();
  auto ring = [](idx v, idx R) { return ((v % R) + R) % R; };
  Tensor a = b.of(A), tc = b.of(Tc), tot = skips ? b.of(total) : Tensor();
  Tensor xcur_all = X[ring(t, 2)], xleft_all = X[ring(t - 1, 2)];
  for (idx l = 0; l < L; ++l) {
    const Tensor* w = weights + l * per;
    Tensor uq = U[l].narrow(0, b.u0, m), uv = uq.view({rows, uq.size(2)});
    Tensor xc = xcur_all[l].narrow(0, i0, m).view({rows, 2 * h});
    if (gather) {
      // [h(i-1, j-1) | h(i-1, j) | h(i-1, j+1) | x(i, j-1) | x(i, j) (| context)]
      std::vector<Tensor> parts = {Hh[ring(t - s - 1, RH)][l].narrow(0, i0, m),
                                   Hh[ring(t - s, RH)][l].narrow(0, i0, m),
                                   Hh[ring(t - s + 1, RH)][l].narrow(0, i0, m), xleft_all[l].narrow(0, i0, m),
                                   xcur_all[l].narrow(0, i0, m)};
      if (ctx.numel() > 0) parts.push_back(ctx.narrow(0, b.u0, m));
      at::cat_out(uq, parts, -1);
    } else {
      uv.slice(1, 5 * h + slo, 5 * h + shi).copy_(xc.slice(1, slo, shi));
    }
    at::addmm_out(a, w[1], uv, w[0]);
    Tensor hc = Hh[ring(t, RH)][l].narrow(0, i0 + 1, m).view({rows, h});
    Tensor c_up = Cc[ring(t - s, RC)][l].narrow(0, i0, m).view({rows, h});
    Tensor c_cur = Cc[ring(t, RC)][l].narrow(0, i0 + 1, m).view({rows, h});
    lstm_step(a, k, fast, c_up.slice(1, hlo, hhi), c_cur.slice(1, hlo, hhi), tc, hc.slice(1, hlo, hhi));
    Tensor xn = X[ring(t, 2)][l + 1].narrow(0, i0, m).view({rows, 2 * h});
    linear(xn, hc, w[2], w[3], out, &xc).add_(w[3]);
    if (skips) linear(tot, xn, w[4], w[5], sk, l == 0 ? nullptr : &tot);
  }
  return skips ? tot : X[ring(t, 2)][L].narrow(0, i0, m).view({rows, 2 * h});
}

// The Chooser's draw (sampling/chooser.py) on a block of rows: per row, the number of entries of
// the float64 cumulative softmax(z) that are < u, at most L - 1; z = logits, or (logits - max) / T.
void draw_rows(const Tensor& logits, const Tensor& u, double temperature, Tensor v) {
  Tensor lg = logits.to(at::kDouble);
  Tensor z = temperature == 1.0 ? lg : at::div(at::sub(lg, at::amax(lg, {-1}, true)), temperature);
  Tensor cdf = at::softmax(z, -1).cumsum_(-1);
  at::searchsorted_out(v, cdf, u);
  v.clamp_max_(logits.size(1) - 1);
}

// The first conv's output buffer of the block (the engine's x0).
Tensor block_x0(idx kind, const Block& b, const Step& st, at::TensorList bufs) {
  if (kind == 0) return b.of(bufs[1][0]);  // PixelCNN: X[0, :N]
  const Tensor& X = bufs[0];               // Row LSTM: X[t % 2, 0, lo:hi + 1]
  return X[st.t % 2][0].narrow(0, st.lo + b.u0, b.units()).view({b.rows(), X.size(4)});
}

Tensor wave_pass(int64_t kind, at::TensorList bufs, at::TensorList weights, at::IntArrayRef step,
                 at::IntArrayRef first, at::IntArrayRef head_g, at::IntArrayRef layer, const Tensor& u,
                 double temperature) {
  TORCH_CHECK(kind == 0 || kind == 1, "wave_pass: kind 0 (PixelCNN) or 1 (Row LSTM) expected");
  TORCH_CHECK(step.size() == 7 && first.size() == 9 && head_g.size() == 5, "wave_pass: bad geometry");
  const Step st(step);
  const idx N = st.S() * st.n;
  const bool drawing = u.numel() > 0;
  TORCH_CHECK(!drawing || (st.need && u.size(0) == N), "wave_pass: u (S*n, 1) expected with the logits");
  const Tensor &E = bufs[0], &T0 = bufs[1], &T1 = bufs[2];
  at::TensorList engine = bufs.slice(3);
  Tensor logits = st.need ? at::empty({N, weights[4].size(1)}, E.options()) : Tensor();
  Tensor v = drawing ? at::empty({N, 1}, u.options().dtype(at::kLong)) : Tensor();
  for_blocks(st.S(), st.n, st.parts, [&](const Block& b) {
    first_conv(b, st, E, weights[0], weights[1], first, block_x0(kind, b, st, engine));
    Tensor stream = kind == 0 ? pixelcnn_blocks(b, st, engine, weights.data() + 6, layer)
                              : row_lstm_blocks(b, st, engine, weights.data() + 6, layer);
    head(b, st, stream, T0, T1, weights.data() + 2, head_g, logits);
    if (drawing) draw_rows(b.of(logits), b.of(u), temperature, b.of(v));
  });
  return drawing ? v : st.need ? logits : at::empty({0}, E.options());
}

Tensor draw(const Tensor& logits, const Tensor& u, double temperature, int64_t parts) {
  TORCH_CHECK(logits.dim() == 2 && u.dim() == 2 && u.size(0) == logits.size(0) && u.size(1) == 1,
              "draw: logits (N, L) and u (N, 1) expected");
  Tensor v = at::empty({logits.size(0), 1}, logits.options().dtype(at::kLong));
  for_blocks(logits.size(0), 1, parts,
             [&](const Block& b) { draw_rows(b.of(logits), b.of(u), temperature, b.of(v)); });
  return v;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn_native, m) {
  m.def("wave_pass(int kind, Tensor[] bufs, Tensor[] weights, int[] step, int[] first, int[] head, "
        "int[] layer, Tensor u, float temperature) -> Tensor");
  m.def("draw(Tensor logits, Tensor u, float temperature, int parts) -> Tensor");
}

TORCH_LIBRARY_IMPL(pixelrnn_native, CPU, m) {
  m.impl("wave_pass", &wave_pass);
  m.impl("draw", &draw);
}
