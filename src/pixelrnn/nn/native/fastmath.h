// Element-wise functions for the native kernels (lstm_scan.cpp, sampling.cpp), written so that
// the compiler vectorizes the loops that call them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace pixelrnn_native {

// exp for float as 2^n * e^r, |r| <= ln2 / 2 (Cody-Waite split of ln 2, degree-7 Taylor
// polynomial: within ~2 ulp), written so that the compiler vectorizes the loops that call it.
// The input is clamped to where the result is a normal float; a NaN stays a NaN.
inline float expo(float x) {
  x = 88.3f < x ? 88.3f : x;
  x = x < -87.3f ? -87.3f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double expo(double x) { return std::exp(x); }

template <typename T>
inline T sigm(T x) { return T(1) / (T(1) + expo(-x)); }
template <typename T>
inline T tanh2(T x) { return T(2) * sigm(T(2) * x) - T(1); }  // as recurrence._tanh_ does

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
}  // namespace pixelrnn_native
