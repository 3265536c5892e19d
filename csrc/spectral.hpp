// csrc/spectral.hpp -- drawing real Gaussian fields directly in Fourier space (half-spectrum, split planes).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "rng.hpp"

namespace fastinterp {
namespace spectral {

// Fills the half-spectrum (rows x M, M = n/2 + 1; rows = n for dim 2, 1 for dim 1) of a real Gaussian field whose
// mode (a, b) has E|X|^2 = amp[a*M + b]^2: self-conjugate modes (every index in {0, n/2}) are real N(0, amp^2);
// the others complex with N(0, amp^2/2) parts; in the columns b = 0 and b = n/2 of a 2-D field, mode (n - a, b) is
// the conjugate of (a, b) (only a < n/2 is drawn). Mode (a, b) uses normal pair a*M + b of `st`, so the result does
// not depend on anything but the stream. z0, z1: scratch of M doubles.
template <class T>
void draw_hermitian(const rng::Stream& st, const double* amp, long n, int dim, T* re, T* im, double* z0, double* z1) {
  const long m = n / 2 + 1, rows = dim == 2 ? n : 1;
  const double h = std::sqrt(0.5);
  for (long a = 0; a < rows; ++a) {
    const long i0 = a * m;
    const bool self_row = dim == 1 || a == 0 || a == n / 2;
    if (dim == 2 && a > n / 2)  // the self-conjugate columns of these rows come from row n - a
      st.pairs(static_cast<uint64_t>(i0 + 1), m - 2, z0 + 1, z1 + 1);
    else
      st.pairs(static_cast<uint64_t>(i0), m, z0, z1);
    for (long b = 1; b < m - 1; ++b) {
      const double A = amp[i0 + b] * h;
      re[i0 + b] = static_cast<T>(A * z0[b]);
      im[i0 + b] = static_cast<T>(A * z1[b]);
    }
    for (long b : {0L, m - 1}) {
      const long i = i0 + b;
      const double A = amp[i];
      if (self_row) {
        re[i] = static_cast<T>(A * z0[b]);
        im[i] = T(0);
      } else if (a < n / 2) {
        const long j = (n - a) * m + b;
        re[i] = re[j] = static_cast<T>(A * h * z0[b]);
        im[i] = static_cast<T>(A * h * z1[b]);
        im[j] = -im[i];
      }
    }
  }
}

}  // namespace spectral
}  // namespace fastinterp
