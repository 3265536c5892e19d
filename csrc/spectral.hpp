// csrc/spectral.hpp -- drawing real Gaussian fields directly in Fourier space (half-spectrum, split planes).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "rng.hpp"

namespace fastinterp {
namespace spectral {

// Fills the half-spectrum (rows x M, M = n/2 + 1; rows = n for dim 2, 1 for dim 1) of a real Gaussian field whose
// mode (a, b) has E|X|^2 = amp[a*M + b]^2: self-conjugate modes (every index in {0, n/2}) are real N(0, amp^2);
// the others complex with N(0, amp^2/2) parts; in the columns b = 0 and b = n/2 of a 2-D field, mode (n - a, b) is
// the conjugate of (a, b) (only a < n/2 is drawn). Mode (a, b) uses normal pair a*M + b of `st`, so the result does
// not depend on anything but the stream. z0, z1: scratch of rows * M doubles (unused, may be null, when T is
// double). All rows * M pairs are drawn in one batch (long vectorised Philox runs); the pairs of the
// conjugate-column modes of rows a > n/2 are drawn but unused.
template <class T>
void draw_hermitian(const rng::Stream& st, const double* amp, long n, int dim, T* re, T* im, double* z0, double* z1) {
  const long m = n / 2 + 1, rows = dim == 2 ? n : 1;
  const double h = std::sqrt(0.5);
  if constexpr (std::is_same<T, double>::value) {
    // draw straight into the output planes and scale in place (less memory traffic than a separate scratch; the
    // unused normals of the conjugate columns of rows a > n/2 are overwritten from row n - a or left unused)
    z0 = re;
    z1 = im;
  }
  st.pairs(0, rows * m, z0, z1);
  for (long a = 0; a < rows; ++a) {
    const long i0 = a * m;
    const bool self_row = dim == 1 || a == 0 || a == n / 2;
    for (long b = 1; b < m - 1; ++b) {
      const double A = amp[i0 + b] * h;
      re[i0 + b] = static_cast<T>(A * z0[i0 + b]);
      im[i0 + b] = static_cast<T>(A * z1[i0 + b]);
    }
    for (long b : {0L, m - 1}) {
      const long i = i0 + b;
      const double A = amp[i];
      if (self_row) {
        re[i] = static_cast<T>(A * z0[i]);
        im[i] = T(0);
      } else if (a < n / 2) {  // the self-conjugate columns of rows n - a > n/2 are set here
        const long j = (n - a) * m + b;
        re[i] = re[j] = static_cast<T>(A * h * z0[i]);
        im[i] = static_cast<T>(A * h * z1[i]);
        im[j] = -im[i];
      }
    }
  }
}

}  // namespace spectral
}  // namespace fastinterp
