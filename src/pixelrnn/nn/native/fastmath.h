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

}  // namespace pixelrnn_native
