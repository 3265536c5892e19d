// csrc/spectral.hpp -- drawing real Gaussian fields directly in Fourier space (half-spectrum, split planes).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "rng.hpp"

namespace fastinterp {
namespace spectral {

// Per-mode multipliers of draw_hermitian for amplitudes `amp` (rows x M, M = n/2 + 1; rows = n for dim 2, 1 for
// dim 1): amp for the self-conjugate modes (every index in {0, n/2}), which are real N(0, amp^2); amp * sqrt(1/2)
// for the others, complex with N(0, amp^2/2) parts. Computed once per table, not per draw.
inline std::vector<double> hermitian_multipliers(const double* amp, long n, int dim) {
  const long m = n / 2 + 1, rows = dim == 2 ? n : 1;
  const double h = std::sqrt(0.5);
  std::vector<double> mul(rows * m);
  for (long a = 0; a < rows; ++a) {
    const bool self_row = dim == 1 || a == 0 || a == n / 2;
    for (long b = 0; b < m; ++b) {
      const bool self = self_row && (b == 0 || b == m - 1);
      mul[a * m + b] = self ? amp[a * m + b] : amp[a * m + b] * h;
    }
  }
  return mul;
}

// Fills the half-spectrum of a real Gaussian field whose mode (a, b) has E|X|^2 = amp[a*M + b]^2, given
// mul = hermitian_multipliers(amp): self-conjugate modes real, the others complex; in the columns b = 0 and
// b = n/2 of a 2-D field, mode (n - a, b) is the conjugate of (a, b) (only a < n/2 is drawn). Mode (a, b) uses
// normal pair a*M + b of `st`, so the result does not depend on anything but the stream. z0, z1: scratch of
// rows * M doubles (unused, may be null, when T is double). All rows * M pairs are drawn in one batch (long
// vectorised Philox runs), scaled by mul chunk by chunk while in cache; the pairs of the conjugate-column modes of
// rows a > n/2 are drawn but unused.
template <class T>
void draw_hermitian(const rng::Stream& st, const double* mul, long n, int dim, T* re, T* im, double* z0, double* z1) {
  const long m = n / 2 + 1, rows = dim == 2 ? n : 1;
  if constexpr (std::is_same<T, double>::value) {  // draw straight into the output planes
    z0 = re;
    z1 = im;
  }
  st.pairs(0, rows * m, z0, z1, mul);
  if constexpr (!std::is_same<T, double>::value)
    for (long i = 0; i < rows * m; ++i) {
      re[i] = static_cast<T>(z0[i]);
      im[i] = static_cast<T>(z1[i]);
    }
  for (long a = 0; a < rows; ++a) {
    const bool self_row = dim == 1 || a == 0 || a == n / 2;
    for (long b : {0L, m - 1}) {
      const long i = a * m + b;
      if (self_row) {
        im[i] = T(0);
      } else if (a < n / 2) {  // the self-conjugate columns of rows n - a > n/2 are set here
        const long j = (n - a) * m + b;
        re[j] = re[i];
        im[j] = -im[i];
      }
    }
  }
}

}  // namespace spectral
}  // namespace fastinterp
