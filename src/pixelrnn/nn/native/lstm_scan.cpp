// The LSTM scan of pixelrnn.nn.recurrence as one native CPU kernel (forward and backward).
//
// The same recurrence and the same geometries as the pure-PyTorch version (see recurrence.py):
// kind 0 = rows (3 taps on the row above, c carried from (i-1, j), learned initial state),
// kind 1 = diagonals (taps (i-1, j) and (i, j-1), c carried from (i, j-1), zero initial state).
//
// Scans in bands of rows (activation checkpointing, see pixelrnn.nn.blocks): the state a band
// starts from is the end of the band above. For rows that is h0 and c0 (any values, one per
// column and image), and the last row's cell states are returned too (c_last) and take a
// gradient; for diagonals the row above's hidden states, h0 ("top"; zero when not given).
// What differs is how the work is laid out:
//
//  * Pixels are stored in *step order* (step by step; within a step by column for rows, by row for
//    diagonals), so that the pixels of one step are consecutive rows of every buffer:
//        U   (D, P*N, k*h)   each pixel's tap inputs [h(tap 0) | h(tap 1) | ...]
//        A   (D, P*N, 4h)    activated gates [o, f, i, g]
//        C   (D, P*N, h)     cell states (their tanh is recomputed in the backward pass)
//    A step's state-to-state product is then one matrix product A_t = U_t W on contiguous rows,
//    with no concatenation: when a pixel's h is computed it is written straight into the U rows
//    of the (at most k) pixels of the next step that read it. U for all steps at once is also
//    what the weight gradient needs (dW = U^T dA, one product over every pixel).
//  * Everything element-wise of a step (adding the input-to-state term and its bias, the gate activations,
//    the cell update, tanh, the output; in the backward the gate derivatives, the carried
//    gradients, the sums over the taps and the bias gradient) is one loop over the step's pixels:
//    one pass over memory in place of ~15 (forward) and ~25 (backward) tensor operations.
//  * The batch is cut into `chunks` (and the directions are independent): each (direction,
//    chunk) runs its whole scan on one thread (at::parallel_for), with single-threaded matrix
//    products, so the threads never wait for each other between steps. A chunk's rows are the
//    block [P*n0, P*(n0+Nc)) of its direction, laid out (pixel, image).
//
// Inputs and outputs keep the image layout (D, H, W, N, X) of the Python version; pre (and so its
// gradient) may have any layout with contiguous features, and a direction may be *mirrored* (its
// columns read and written right to left: the right-to-left direction of the Diagonal BiLSTM
// without flipped copies of its input and output).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/_to_copy.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "fastmath.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using idx = int64_t;
using pixelrnn_native::expo;
using pixelrnn_native::sigm;
using pixelrnn_native::tanh2;

// Which pixels form each step and how they are connected, in step order.
struct Plan {
  bool row;
  idx H, W, K, steps, P;
  std::vector<idx> off;    // steps + 1: the first pixel of each step
  std::vector<idx> pi, pj; // image row and column of each pixel
  std::vector<idx> src;    // P*K: the pixel tap k reads; -1: zero; -2-j: h0 at column j (rows,
                           // or the given row above of diagonals)
  std::vector<idx> cons;   // P*K: the pixel whose tap k reads this one, or -1
  std::vector<idx> cprev;  // the pixel whose c is carried in; -1: zero; -2: c0
  std::vector<idx> cnext;  // the pixel that carries this one's c on, or -1
};

Plan make_plan(idx kind, idx H, idx W, bool top) {
  Plan p;
  p.row = kind == 0;
  p.H = H, p.W = W, p.K = p.row ? 3 : 2, p.steps = p.row ? H : H + W - 1, p.P = H * W;
  std::vector<idx> pos(H * W);
  p.off.push_back(0);
  for (idx t = 0; t < p.steps; ++t) {
    idx lo = p.row ? 0 : std::max<idx>(0, t - W + 1), hi = p.row ? W : std::min(H - 1, t) + 1;
    for (idx s = lo; s < hi; ++s) {
      idx i = p.row ? t : s, j = p.row ? s : t - s;
      pos[i * W + j] = static_cast<idx>(p.pi.size());
      p.pi.push_back(i);
      p.pj.push_back(j);
    }
    p.off.push_back(static_cast<idx>(p.pi.size()));
  }
  auto at = [&](idx i, idx j) -> idx { return i >= 0 && i < H && j >= 0 && j < W ? pos[i * W + j] : -1; };
  for (idx q = 0; q < p.P; ++q) {
    idx i = p.pi[q], j = p.pj[q];
    if (p.row) {
      for (idx k = 0; k < 3; ++k) {
        idx jj = j + k - 1;
        p.src.push_back(i > 0 ? at(i - 1, jj) : (jj >= 0 && jj < W ? -2 - jj : -1));
        p.cons.push_back(at(i + 1, j + 1 - k));
      }
      p.cprev.push_back(i > 0 ? at(i - 1, j) : -2);
      p.cnext.push_back(at(i + 1, j));
    } else {
      p.src.push_back(i > 0 || !top ? at(i - 1, j) : -2 - j);
      p.src.push_back(at(i, j - 1));
      p.cons.push_back(at(i + 1, j));
      p.cons.push_back(at(i, j + 1));
      p.cprev.push_back(at(i, j - 1));
      p.cnext.push_back(at(i, j + 1));
    }
  }
  return p;
}

struct Dims {
  idx D, H, W, N, h, G, KH, P, chunks;
  idx ps[4];    // strides of pre and of its gradient over (D, H, W, N); features are contiguous
  idx mirror;   // bit d set: direction d reads and writes its columns right to left
  idx n0(idx c) const { return c * N / chunks; }
  idx col(idx d, idx j) const { return (mirror >> d) & 1 ? W - 1 - j : j; }
  idx img(idx d, idx i, idx j, idx n) const { return ((d * H + i) * W + col(d, j)) * N + n; }  // (D, H, W, N)
  idx pre(idx d, idx i, idx j, idx n) const { return d * ps[0] + i * ps[1] + col(d, j) * ps[2] + n * ps[3]; }
  idx init(idx d, idx j, idx n) const { return (d * W + col(d, j)) * N + n; }  // in (D, W, N)
};

template <typename T>
void cell_forward(idx h, const T* __restrict__ pre, const T* __restrict__ bias, T* __restrict__ a,
                  const T* __restrict__ cp, T* __restrict__ c, T* __restrict__ hout) {
#pragma omp simd
  for (idx q = 0; q < h; ++q) {
    T o = sigm((pre[q] + bias[q]) + a[q]), f = sigm((pre[h + q] + bias[h + q]) + a[h + q]);
    T i = sigm((pre[2 * h + q] + bias[2 * h + q]) + a[2 * h + q]);
    T g = tanh2((pre[3 * h + q] + bias[3 * h + q]) + a[3 * h + q]);
    T cc = f * cp[q] + i * g;
    a[q] = o, a[h + q] = f, a[2 * h + q] = i, a[3 * h + q] = g;
    c[q] = cc, hout[q] = o * tanh2(cc);
  }
}

// The gate gradients of one pixel (tanh(c) recomputed: the same value as in the forward pass);
// written to dA (step order) and dpre (the caller's layout), summed into dbias.
template <typename T>
void cell_backward(idx h, const T* __restrict__ dh, const T* __restrict__ dcn, const T* __restrict__ fn,
                   const T* __restrict__ a, const T* __restrict__ cp, const T* __restrict__ c,
                   T* __restrict__ dc, T* __restrict__ da, T* __restrict__ dpre, double* __restrict__ db) {
#pragma omp simd
  for (idx q = 0; q < h; ++q) {
    T o = a[q], f = a[h + q], i = a[2 * h + q], g = a[3 * h + q], t = tanh2(c[q]);
    T dct = dcn[q] * fn[q] + dh[q] * o * (T(1) - t * t);
    T go = dh[q] * t * (o * (T(1) - o)), gf = dct * cp[q] * (f * (T(1) - f));
    T gi = dct * g * (i * (T(1) - i)), gg = dct * i * (T(1) - g * g);
    dc[q] = dct;
    da[q] = go, da[h + q] = gf, da[2 * h + q] = gi, da[3 * h + q] = gg;
    dpre[q] = go, dpre[h + q] = gf, dpre[2 * h + q] = gi, dpre[3 * h + q] = gg;
    db[q] += go, db[h + q] += gf, db[2 * h + q] += gi, db[3 * h + q] += gg;
  }
}

// Per (direction, chunk): the chunk's first row in the (D*P*N)-row buffers and its image range.
struct Chunk {
  idx d, n0, Nc, base, unit;
  Chunk(const Dims& s, idx u) : d(u / s.chunks), unit(u) {
    idx c = u % s.chunks;
    n0 = s.n0(c), Nc = s.n0(c + 1) - n0, base = d * s.P * s.N + s.P * n0;
  }
};

template <typename T>
struct ForwardBufs {
  const T *pre, *bias, *h0, *c0;
  at::Tensor U, A, weight;  // U (D*P*N, KH), A (D*P*N, G), weight (D, KH, G)
  T *C, *out, *c_last;      // c_last (D, W, N, h): rows only, else null
};

// The taps of step t that read no pixel of the step before: zeros, or the initial state (rows).
template <typename T>
void fill_outer_taps(const Plan& pl, const Dims& s, const Chunk& ch, const T* h0, T* U, idx t) {
  const idx h = s.h, K = pl.K, Nc = ch.Nc;
  for (idx p = pl.off[t]; p < pl.off[t + 1]; ++p)
    for (idx k = 0; k < K; ++k) {
      idx sp = pl.src[p * K + k];
      for (idx n = 0; sp < 0 && n < Nc; ++n) {
        T* to = U + (p * Nc + n) * s.KH + k * h;
        if (sp == -1)
          std::fill(to, to + h, T(0));
        else
          std::memcpy(to, h0 + s.init(ch.d, -2 - sp, ch.n0 + n) * h, h * sizeof(T));
      }
    }
}

template <typename T>
void forward_chunk(const Plan& pl, const Dims& s, const Chunk& ch, ForwardBufs<T>& b) {
  const idx h = s.h, G = s.G, KH = s.KH, K = pl.K, Nc = ch.Nc;
  T* U = b.U.template data_ptr<T>() + ch.base * KH;
  T* A = b.A.template data_ptr<T>() + ch.base * G;
  T* C = b.C + ch.base * h;
  std::vector<T> zero(h, T(0));
  const T* bias = b.bias + ch.d * G;
  at::Tensor w = b.weight[ch.d];
  for (idx t = 0; t < pl.steps; ++t) {
    const idx p0 = pl.off[t], p1 = pl.off[t + 1];
    fill_outer_taps(pl, s, ch, b.h0, U, t);
    at::Tensor a_t = b.A.narrow(0, ch.base + p0 * Nc, (p1 - p0) * Nc);  // the step's gates: U_t W
    at::mm_out(a_t, b.U.narrow(0, ch.base + p0 * Nc, (p1 - p0) * Nc), w);
    for (idx p = p0; p < p1; ++p) {
      const idx i = pl.pi[p], j = pl.pj[p], cs = pl.cprev[p];
      for (idx n = 0; n < Nc; ++n) {
        const idx r = p * Nc + n, nn = ch.n0 + n;
        const T* cp = cs >= 0 ? C + (cs * Nc + n) * h : cs == -1 ? zero.data() : b.c0 + s.init(ch.d, j, nn) * h;
        T* hout = b.out + s.img(ch.d, i, j, nn) * h;
        cell_forward(h, b.pre + s.pre(ch.d, i, j, nn), bias, A + r * G, cp, C + r * h, hout);
        for (idx k = 0; k < K; ++k) {  // h goes straight into the taps of the next step that read it
          idx cn = pl.cons[p * K + k];
          if (cn >= 0) std::memcpy(U + (cn * Nc + n) * KH + k * h, hout, h * sizeof(T));
        }
      }
    }
  }
  for (idx p = pl.off[pl.steps - 1]; b.c_last && p < pl.P; ++p)  // rows: the last row's cells
    for (idx n = 0; n < Nc; ++n)
      std::memcpy(b.c_last + s.init(ch.d, pl.pj[p], ch.n0 + n) * h, C + (p * Nc + n) * h, h * sizeof(T));
}

template <typename T>
struct BackwardBufs {
  const T *grad_h, *grad_c, *A, *C, *c0;  // grad_c: of c_last (rows), or null
  at::Tensor dA, weight_t;  // dA (D*P*N, G), weight_t (D, G, KH)
  T *dpre, *DC, *dh0, *dc0;
  double* dbias;            // (D*chunks, G): one row per chunk, summed afterwards
};

// dh0: the gradient reaching the initial hidden state (rows) or the given row above (diagonals)
// through the taps of step t's pixels in row 0; du holds step t's tap gradients.
template <typename T>
void initial_state_grad(const Plan& pl, const Dims& s, const Chunk& ch, const T* du, T* dh0, idx t) {
  const idx h = s.h, K = pl.K;
  for (idx p = pl.off[t]; p < pl.off[t + 1]; ++p)
    for (idx k = 0; k < K; ++k) {
      idx sp = pl.src[p * K + k];
      for (idx n = 0; sp <= -2 && n < ch.Nc; ++n) {
        T* to = dh0 + s.init(ch.d, -2 - sp, ch.n0 + n) * h;
        const T* g = du + ((p - pl.off[t]) * ch.Nc + n) * s.KH + k * h;
        for (idx q = 0; q < h; ++q) to[q] += g[q];
      }
    }
}

template <typename T>
void backward_chunk(const Plan& pl, const Dims& s, const Chunk& ch, BackwardBufs<T>& b) {
  const idx h = s.h, G = s.G, KH = s.KH, K = pl.K, Nc = ch.Nc;
  const T *A = b.A + ch.base * G, *C = b.C + ch.base * h;
  T *dA = b.dA.template data_ptr<T>() + ch.base * G, *DC = b.DC + ch.base * h;
  idx smax = 0;
  for (idx t = 0; t < pl.steps; ++t) smax = std::max(smax, pl.off[t + 1] - pl.off[t]);
  at::Tensor du_t = at::empty({smax * Nc, KH}, b.dA.options());  // du of the step after t
  T* du = du_t.template data_ptr<T>();
  std::vector<T> zero(h, T(0)), one(h, T(1)), dh(h);
  double* db = b.dbias + ch.unit * G;
  std::fill(db, db + G, 0.0);
  at::Tensor wt = b.weight_t[ch.d];
  for (idx t = pl.steps - 1; t >= 0; --t) {
    const idx p0 = pl.off[t], p1 = pl.off[t + 1];
    for (idx p = p0; p < p1; ++p) {
      const idx i = pl.pi[p], j = pl.pj[p], cs = pl.cprev[p], pn = pl.cnext[p];
      for (idx n = 0; n < Nc; ++n) {
        const idx r = p * Nc + n, nn = ch.n0 + n;
        std::memcpy(dh.data(), b.grad_h + s.img(ch.d, i, j, nn) * h, h * sizeof(T));
        for (idx k = 0; k < K; ++k) {  // the gradient reaching h from the taps that read it
          idx cn = pl.cons[p * K + k];
          if (cn < 0) continue;
          const T* g = du + ((cn - p1) * Nc + n) * KH + k * h;
          for (idx q = 0; q < h; ++q) dh[q] += g[q];
        }
        const T* cp = cs >= 0 ? C + (cs * Nc + n) * h : cs == -1 ? zero.data() : b.c0 + s.init(ch.d, j, nn) * h;
        // the cell's gradient from later: through the next pixel's forget gate, or given (c_last)
        const bool given = pn < 0 && b.grad_c && pl.row;
        const T* dcn = pn >= 0 ? DC + (pn * Nc + n) * h : given ? b.grad_c + s.init(ch.d, j, nn) * h : zero.data();
        const T* fn = pn >= 0 ? A + (pn * Nc + n) * G + h : given ? one.data() : zero.data();
        cell_backward(h, dh.data(), dcn, fn, A + r * G, cp, C + r * h, DC + r * h, dA + r * G,
                      b.dpre + s.pre(ch.d, i, j, nn), db);
        if (cs == -2)  // row 0: the gradient of the initial cell state
          for (idx q = 0; q < h; ++q) b.dc0[s.init(ch.d, j, nn) * h + q] = DC[r * h + q] * A[r * G + h + q];
      }
    }
    at::Tensor du_now = du_t.narrow(0, 0, (p1 - p0) * Nc);  // the gradient of the step's taps: dA_t W^T
    at::mm_out(du_now, b.dA.narrow(0, ch.base + p0 * Nc, (p1 - p0) * Nc), wt);
    if (b.dh0) initial_state_grad(pl, s, ch, du, b.dh0, t);
  }
}

// Runs fn(Chunk) for every (direction, chunk), one per thread, matrix products single-threaded.
template <typename F>
void for_each_chunk(const Dims& s, const F& fn) {
  const idx units = s.D * s.chunks;
  if (units == 1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    fn(Chunk(s, 0));
    return;
  }
  at::parallel_for(0, units, 1, [&](idx u0, idx u1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    for (idx u = u0; u < u1; ++u) fn(Chunk(s, u));
  });
}

// sizes (D, H, W, N, h) of the hidden states, k*h of the taps, the strides of pre
Dims dims_of(at::IntArrayRef hs, idx KH, idx chunks, at::IntArrayRef pre_strides, idx mirror) {
  TORCH_CHECK(hs.size() == 5 && pre_strides.size() == 5 && pre_strides[4] == 1,
              "(D, H, W, N, h) sizes and pre's 5 strides (features contiguous) expected");
  Dims s{hs[0], hs[1], hs[2], hs[3], hs[4], 4 * hs[4], KH, hs[1] * hs[2],
         std::max<idx>(1, std::min(chunks, hs[3])), {pre_strides[0], pre_strides[1], pre_strides[2], pre_strides[3]},
         mirror};
  return s;
}

void check(const at::Tensor& t, const at::Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == like.scalar_type(),
              name, ": a contiguous CPU tensor of the same dtype as pre expected");
}

// pre (D, H, W, N, 4h), any layout with contiguous features; bias (D, 4h); h0, c0 (D, W, N, h) for
// rows; for diagonals h0 (D, W, N, h) the row above, or empty (zeros), and c0 empty. Returns the
// hidden states (D, H, W, N, h), what the backward pass needs (U, A, C) and c_last (D, W, N, h) of
// rows (empty for diagonals).
std::vector<at::Tensor> scan_forward(const at::Tensor& pre, const at::Tensor& weight, const at::Tensor& bias,
                                     const at::Tensor& h0, const at::Tensor& c0, int64_t kind, int64_t chunks,
                                     int64_t mirror) {
  TORCH_CHECK(pre.dim() == 5 && pre.size(4) % 4 == 0 && pre.stride(4) == 1 && pre.device().is_cpu(),
              "pre: a (D, H, W, N, 4h) CPU tensor with contiguous features expected");
  check(weight, pre, "weight"), check(bias, pre, "bias");
  const Dims s = dims_of({pre.size(0), pre.size(1), pre.size(2), pre.size(3), pre.size(4) / 4}, weight.size(1),
                         chunks, pre.strides(), mirror);
  const bool top = kind == 1 && h0.numel() > 0;
  const Plan pl = make_plan(kind, s.H, s.W, top);
  TORCH_CHECK(s.KH == pl.K * s.h && weight.size(0) == s.D && weight.size(2) == s.G && bias.numel() == s.D * s.G,
              "weight (D, k*h, 4h) and bias (D, 4h) expected");
  if (pl.row || top) check(h0, pre, "h0");
  if (pl.row) check(c0, pre, "c0");
  TORCH_CHECK(!(pl.row || top) || h0.numel() == s.D * s.W * s.N * s.h, "h0: (D, W, N, h) expected");
  auto opt = pre.options();
  at::Tensor U = at::empty({s.D * s.P * s.N, s.KH}, opt), A = at::empty({s.D * s.P * s.N, s.G}, opt);
  at::Tensor C = at::empty({s.D * s.P * s.N, s.h}, opt), out = at::empty({s.D, s.H, s.W, s.N, s.h}, opt);
  at::Tensor c_last = pl.row ? at::empty({s.D, s.W, s.N, s.h}, opt) : at::empty({0}, opt);
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "pixelrnn_scan_forward", [&] {
    ForwardBufs<scalar_t> b{pre.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(),
                            pl.row || top ? h0.data_ptr<scalar_t>() : nullptr,
                            pl.row ? c0.data_ptr<scalar_t>() : nullptr, U, A, weight, C.data_ptr<scalar_t>(),
                            out.data_ptr<scalar_t>(), pl.row ? c_last.data_ptr<scalar_t>() : nullptr};
    for_each_chunk(s, [&](const Chunk& ch) { forward_chunk(pl, s, ch, b); });
  });
  return {out, U, A, C, c_last};
}

// The gradients (pre in the layout of pre_strides, weight, bias, h0, c0; h0 for rows and for
// diagonals with a given row above (top), c0 for rows). grad_c: the gradient of c_last (rows), or
// empty (zero).
std::vector<at::Tensor> scan_backward(const at::Tensor& grad_h, const at::Tensor& grad_c, const at::Tensor& weight,
                                      const at::Tensor& U, const at::Tensor& A, const at::Tensor& C,
                                      const at::Tensor& c0, int64_t kind, int64_t chunks, int64_t mirror, bool top,
                                      at::IntArrayRef pre_strides) {
  for (auto* t : {&weight, &U, &A, &C}) check(*t, grad_h, "saved tensor");
  check(grad_h, grad_h, "grad_h");
  const Dims s = dims_of(grad_h.sizes(), weight.size(1), chunks, pre_strides, mirror);
  top = top && kind == 1;
  const Plan pl = make_plan(kind, s.H, s.W, top);
  const bool has_gc = pl.row && grad_c.numel() > 0;
  if (has_gc) check(grad_c, grad_h, "grad_c");
  TORCH_CHECK(!has_gc || grad_c.numel() == s.D * s.W * s.N * s.h, "grad_c: (D, W, N, h) expected");
  auto opt = grad_h.options();
  at::Tensor dpre = at::empty_strided({s.D, s.H, s.W, s.N, s.G}, pre_strides, opt);
  at::Tensor dA = at::empty({s.D * s.P * s.N, s.G}, opt), DC = at::empty({s.D * s.P * s.N, s.h}, opt);
  at::Tensor dbias = at::empty({s.D, s.chunks, s.G}, opt.dtype(at::kDouble));
  at::Tensor dh0 = pl.row || top ? at::zeros({s.D, s.W, s.N, s.h}, opt) : at::empty({0}, opt);
  at::Tensor dc0 = pl.row ? at::empty({s.D, s.W, s.N, s.h}, opt) : at::empty({0}, opt);
  if (pl.row) check(c0, grad_h, "c0");
  at::Tensor weight_t = weight.transpose(1, 2).contiguous();
  AT_DISPATCH_FLOATING_TYPES(grad_h.scalar_type(), "pixelrnn_scan_backward", [&] {
    BackwardBufs<scalar_t> b{grad_h.data_ptr<scalar_t>(), has_gc ? grad_c.data_ptr<scalar_t>() : nullptr,
                             A.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(),
                             pl.row ? c0.data_ptr<scalar_t>() : nullptr, dA, weight_t,
                             dpre.data_ptr<scalar_t>(), DC.data_ptr<scalar_t>(),
                             pl.row || top ? dh0.data_ptr<scalar_t>() : nullptr,
                             pl.row ? dc0.data_ptr<scalar_t>() : nullptr,
                             dbias.data_ptr<double>()};
    for_each_chunk(s, [&](const Chunk& ch) { backward_chunk(pl, s, ch, b); });
  });
  // the state-to-state weight gradient: one product over every pixel of each direction
  at::Tensor dW = at::bmm(U.view({s.D, s.P * s.N, s.KH}).transpose(1, 2), dA.view({s.D, s.P * s.N, s.G}));
  return {dpre, dW, dbias.sum(1).to(grad_h.scalar_type()), dh0, dc0};
}

}  // namespace

TORCH_LIBRARY(pixelrnn_native, m) {
  m.def("scan_forward(Tensor pre, Tensor weight, Tensor bias, Tensor h0, Tensor c0, int kind, int chunks, "
        "int mirror) -> Tensor[]");
  m.def("scan_backward(Tensor grad_h, Tensor grad_c, Tensor weight, Tensor U, Tensor A, Tensor C, Tensor c0, "
        "int kind, int chunks, int mirror, bool top, int[] pre_strides) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(pixelrnn_native, CPU, m) {
  m.impl("scan_forward", &scan_forward);
  m.impl("scan_backward", &scan_backward);
}
