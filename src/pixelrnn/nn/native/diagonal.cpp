// The Diagonal BiLSTM's cached sampler as native calls (sampling/diagonal_bilstm.py,
// sampling/native_pass.py NativeRow): a whole row of plain draws, and the right-to-left scan
// after it. What they share with the wavefront pass: sampling.h.
//   diag_row(bufs, weights, geo, T): row i, every pixel and colour pass, the draws, the values kept
//   diag_scan(PRE, Hr, Cr, w_left, fast, threads): the right-to-left scan over a finished row
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "fastmath.h"
#include "sampling.h"

namespace {

using namespace pixelrnn_native;

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
// b: a block of images (one "row" each: for_blocks with n = 1), so b.mat(t, lead) is its rows of t[lead].
template <typename T>
void diag_row_block(const Block& b, at::TensorList bufs, at::TensorList weights, at::IntArrayRef geo,
                    double temperature) {
  const Tensor &erow = bufs[0], &above = bufs[1], &XH = bufs[2], &Cl = bufs[3], &UP = bufs[4], &R = bufs[5];
  const Tensor &total = bufs[6], &T0 = bufs[7], &T1 = bufs[8], &U = bufs[9], &V = bufs[10], &table = bufs[11];
  const idx i = geo[0], passes = geo[1], rw = geo[2], cols = geo[3];
  const bool fast = geo[4] != 0, skips = total.numel() > 0;
  const idx L = Cl.size(0), W = Cl.size(1) - 1, n = Cl.size(2), h = Cl.size(3), C = erow.size(2);
  const idx H = U.size(1), b0 = b.first(), rows = b.rows(), per = skips ? 4 : 2, nw = 1 + L * per + 4;
  std::vector<T> gates(rows * 4 * h), gtmp(h);
  auto rowsof = [&](const Tensor& t, std::initializer_list<idx> lead) { return b.mat<T>(t, lead); };
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
      diag_row_block<scalar_t>(b, bufs, weights, geo, temperature);
    });
  });
}

// The Diagonal BiLSTM's right-to-left scan over a finished row (DiagonalBiLSTMEngine.end_row, the
// loop over the columns), every layer, with diag_row's arithmetic: for j = W - 1 .. 0, the gates
// PRE[:, j] + h(i, j + 1) @ w_left, then the LSTM step into Hr[:, j] and Cr[:, j] (column W: zero).
// PRE (L, W, n, 4h), Hr and Cr (L, W + 1, n, h), w_left (L, h, 4h); `fast`: the g columns doubled.
template <typename T>
void diag_scan_block(const Block& b, const Tensor& PRE, const Tensor& Hr, const Tensor& Cr, const Tensor& wl,
                     bool fast) {
  const idx L = PRE.size(0), W = PRE.size(1), h = Hr.size(3), rows = b.rows();
  std::vector<T> gates(rows * 4 * h), gtmp(h);
  Mat<T> a{gates.data(), rows, 4 * h, 4 * h};
  auto block = [&](const Tensor& t, idx l, idx j) { return b.mat<T>(t, {l, j}); };
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
               [&](const Block& b) { diag_scan_block<scalar_t>(b, PRE, Hr, Cr, w_left, fast); });
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn_native, m) {
  m.def("diag_row(Tensor[] bufs, Tensor[] weights, int[] geo, float temperature) -> ()");
  m.def("diag_scan(Tensor PRE, Tensor Hr, Tensor Cr, Tensor w_left, bool fast, int threads) -> ()");
}

TORCH_LIBRARY_IMPL(pixelrnn_native, CPU, m) {
  m.impl("diag_row", &diag_row);
  m.impl("diag_scan", &diag_scan);
}
