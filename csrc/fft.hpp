// csrc/fft.hpp -- fastinterp's real FFT: header-only, C++17, licence-clean (no dependency).
//
// Stable API (namespace fastinterp::fft), T = float or double, sizes are powers of two >= 4
// (tested 8..1024). All transforms are UNNORMALISED, like FFTW:
//   forward  X_k = sum_j x_j exp(-2 pi i k.j / n)      inverse  x_j = sum_k X_k exp(+2 pi i k.j / n)
// so numpy's irfft/irfft2 equal our inverse divided by n (1-D) or n0*n1 (2-D).
// Spectra are SPLIT planes: real parts in one array, imaginary parts in another, both laid out like
// numpy's rfft output (last axis halved to n/2+1). Split planes let every butterfly loop run over
// contiguous "lanes" (many independent transforms at once), which the compiler vectorises.
//
//   fastinterp::fft::RealFFT1D<T> p(n);
//     p.forward(x, xs, re, im, os, batch);   // batch rows of n reals (row stride xs) -> rows of n/2+1 bins
//     p.inverse(re, im, is, x, xs, batch);   // rows of n/2+1 bins (row stride is) -> rows of n reals;
//                                            //   input preserved; Im of bins 0 and n/2 ignored (as numpy)
//   fastinterp::fft::RealFFT2D<T> p(n0, n1);
//     p.forward(x, re, im);                  // x: n0 x n1 row-major -> re/im: n0 x (n1/2+1) row-major
//     p.inverse_destroy(re, im, x);          // re/im -> x, OVERWRITING re/im (saves a copy in solvers)
//     p.inverse(re, im, x);                  // same, input preserved (copies into the plan's scratch)
//
// A plan owns scratch buffers, so one plan must not be used by two threads at once: make one plan
// per thread (construction is cheap: twiddle tables only, or an FFTW plan from in-process wisdom).
//
// Backends. Plans take a Backend argument defaulting to default_backend(). Backend::builtin is the code
// below: radix-8/4/2 iterative complex FFT with exact precomputed twiddles (computed in double,
// rounded once), the standard half-length packing trick for real transforms, and the 2-D transform as
// row r2c (rows gathered in blocks of kBlock into a transposed scratch, in 4x4 register tiles and straight into
// bit-reversed order, so they are vectorised across rows) followed by column complex FFTs vectorised across
// columns (optionally only the first `cols` columns, for band-limited spectra). Backend::fftw exists only when the
// build defines FASTINTERP_HAVE_FFTW (CMake option FASTINTERP_USE_FFTW, on when libfftw3 is found).
// FFTW is GPL: a wheel that is redistributed must be built with -DFASTINTERP_USE_FFTW=OFF.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#ifdef FASTINTERP_HAVE_FFTW
#include <fftw3.h>

#include <mutex>
#endif

// Hot loops are compiled three times on x86-64 Linux with GCC (AVX-512 x86-64-v4, AVX2+FMA x86-64-v3 and
// baseline) and picked at load time (target_clones/ifunc), so a portable wheel still runs vectorised on AVX2 and
// AVX-512 machines. The clone changes roundoff only (FMA contraction), never results across threads of one machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FASTINTERP_NO_CLONES)
#define FASTINTERP_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTINTERP_SIMD_CLONES
#endif

// Helpers called from the cloned hot loops are force-inlined so that they are compiled for each clone's target.
#if defined(__GNUC__) || defined(__clang__)
#define FASTINTERP_FFT_INLINE __attribute__((always_inline)) inline
#else
#define FASTINTERP_FFT_INLINE inline
#endif

namespace fastinterp {
namespace fft {

enum class Backend { builtin = 0, fftw = 1 };

inline bool fftw_available() {
#ifdef FASTINTERP_HAVE_FFTW
  return true;
#else
  return false;
#endif
}

// Process-wide default for new plans; builtin unless changed at runtime (set_default_backend).
inline Backend& default_backend_ref() {
  static Backend b = Backend::builtin;
  return b;
}
inline Backend default_backend() { return default_backend_ref(); }
inline void set_default_backend(Backend b) {
  if (b == Backend::fftw && !fftw_available())
    throw std::invalid_argument("fft backend 'fftw' was not compiled in (build with libfftw3-dev installed)");
  default_backend_ref() = b;
}
inline const char* backend_name(Backend b) { return b == Backend::fftw ? "fftw" : "builtin"; }

constexpr double kPi = 3.141592653589793238462643383279502884;

inline bool is_pow2(long n) { return n > 0 && (n & (n - 1)) == 0; }

inline void check_size(long n, const char* what) {
  if (n < 4 || !is_pow2(n) || n > (1L << 24))
    throw std::invalid_argument(std::string(what) + " must be a power of two >= 4, got " + std::to_string(n));
}

#ifdef FASTINTERP_HAVE_FFTW
// The FFTW planner is not thread-safe; execution is.
inline std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}
template <class T>
struct FFTWTraits;
template <>
struct FFTWTraits<double> {
  using plan = fftw_plan;
  using cpx = fftw_complex;
  static plan r2c(int rank, const int* n, double* in, cpx* out, unsigned f) {
    return fftw_plan_dft_r2c(rank, n, in, out, f);
  }
  static plan c2r(int rank, const int* n, cpx* in, double* out, unsigned f) {
    return fftw_plan_dft_c2r(rank, n, in, out, f);
  }
  static void exec(plan p) { fftw_execute(p); }
  static void* alloc(size_t bytes) { return fftw_malloc(bytes); }
  static void release(void* p) { fftw_free(p); }
  static void destroy(plan p) { fftw_destroy_plan(p); }
};
template <>
struct FFTWTraits<float> {
  using plan = fftwf_plan;
  using cpx = fftwf_complex;
  static plan r2c(int rank, const int* n, float* in, cpx* out, unsigned f) {
    return fftwf_plan_dft_r2c(rank, n, in, out, f);
  }
  static plan c2r(int rank, const int* n, cpx* in, float* out, unsigned f) {
    return fftwf_plan_dft_c2r(rank, n, in, out, f);
  }
  static void exec(plan p) { fftwf_execute(p); }
  static void* alloc(size_t bytes) { return fftwf_malloc(bytes); }
  static void release(void* p) { fftwf_free(p); }
  static void destroy(plan p) { fftwf_destroy_plan(p); }
};

// One r2c and one c2r FFTW plan (rank 1 or 2), planned with FFTW_MEASURE (in-process wisdom makes later plans of
// the same shape instant) on the plan's own SIMD-aligned interleaved buffers; forward/inverse copy between those
// and the caller's split planes. (FFTW's split-array guru interface corrupted the heap here with FFTW_MEASURE and
// AVX-512 codelets, Debian fftw 3.3.10, so the standard interleaved transforms are used.)
template <class T>
class FFTWPair {
 public:
  using Tr = FFTWTraits<T>;
  FFTWPair(int rank, const long* n) {
    total_ = 1;
    int dims[2];
    for (int d = 0; d < rank; ++d) {
      total_ *= n[d];
      dims[d] = static_cast<int>(n[d]);
    }
    half_ = total_ / n[rank - 1] * (n[rank - 1] / 2 + 1);
    x_ = static_cast<T*>(Tr::alloc(sizeof(T) * total_));
    c_ = static_cast<typename Tr::cpx*>(Tr::alloc(sizeof(typename Tr::cpx) * half_));
    if (!x_ || !c_) throw std::bad_alloc();
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fwd_ = Tr::r2c(rank, dims, x_, c_, FFTW_MEASURE);
    inv_ = Tr::c2r(rank, dims, c_, x_, FFTW_MEASURE);
    if (!fwd_ || !inv_) throw std::runtime_error("FFTW planning failed");
  }
  ~FFTWPair() {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    if (fwd_) Tr::destroy(fwd_);
    if (inv_) Tr::destroy(inv_);
    Tr::release(x_);
    Tr::release(c_);
  }
  FFTWPair(const FFTWPair&) = delete;
  FFTWPair& operator=(const FFTWPair&) = delete;
  void forward(const T* x, T* re, T* im) {
    std::copy(x, x + total_, x_);
    Tr::exec(fwd_);
    for (long i = 0; i < half_; ++i) {
      re[i] = c_[i][0];
      im[i] = c_[i][1];
    }
  }
  void inverse_destroy(const T* re, const T* im, T* x) {
    for (long i = 0; i < half_; ++i) {
      c_[i][0] = re[i];
      c_[i][1] = im[i];
    }
    Tr::exec(inv_);
    std::copy(x_, x_ + total_, x);
  }
  // FFTW alone (no copies), on its own buffers: what FFTW itself costs per r2c + c2r pair.
  void raw_pair() {
    Tr::exec(fwd_);
    Tr::exec(inv_);
  }

 private:
  long total_ = 0, half_ = 0;
  T* x_ = nullptr;
  typename Tr::cpx* c_ = nullptr;
  typename Tr::plan fwd_ = nullptr, inv_ = nullptr;
};
#endif  // FASTINTERP_HAVE_FFTW

// Complex FFT of length n applied to `lanes` independent transforms at once. Element r of lane c lives at
// re[r * es + c], im[r * es + c]: lanes are contiguous, so every butterfly is a loop over c.
template <class T>
class LaneFFT {
 public:
  LaneFFT() = default;
  explicit LaneFFT(long n) : n_(n) {
    if (n < 1 || !is_pow2(n)) throw std::invalid_argument("LaneFFT size must be a power of two");
    // twiddles for half-span h at [h, 2h): exp(-2 pi i j / (2h)), j < h; computed in double, rounded once
    twr_.assign(std::max<long>(n, 2), T(0));
    twi_.assign(std::max<long>(n, 2), T(0));
    for (long h = 1; h < n; h *= 2)
      for (long j = 0; j < h; ++j) {
        const double a = -kPi * static_cast<double>(j) / static_cast<double>(h);
        twr_[h + j] = static_cast<T>(std::cos(a));
        twi_[h + j] = static_cast<T>(std::sin(a));
      }
    long bits = 0;
    while ((1L << bits) < n) ++bits;
    for (long i = 0; i < n; ++i) {
      long r = 0;
      for (long b = 0; b < bits; ++b)
        if (i & (1L << b)) r |= 1L << (bits - 1 - b);
      rev_.push_back(r);
      if (i < r) swaps_.push_back({i, r});
    }
  }
  long size() const { return n_; }
  // rev[i]: bit reversal of i (log2 n bits). Callers that gather their input anyway store element i at row rev[i]
  // and pass permuted = true, saving run() its permutation sweep.
  const long* bitrev() const { return rev_.data(); }

  // In-place transform; sign -1 (forward) when !inverse, +1 when inverse. Unnormalised. permuted: the input rows
  // are already in bit-reversed order.
  FASTINTERP_SIMD_CLONES void run(T* re, T* im, long es, long lanes, bool inverse, bool permuted = false) const {
    if (!permuted)
      for (const auto& s : swaps_) {
        T* a = re + s.first * es;
        T* b = re + s.second * es;
        T* c = im + s.first * es;
        T* d = im + s.second * es;
        for (long l = 0; l < lanes; ++l) {
          std::swap(a[l], b[l]);
          std::swap(c[l], d[l]);
        }
      }
    const T sg = inverse ? T(-1) : T(1);  // conjugates the (forward) twiddles
    long h = 1;
    // radix-8 passes fuse three radix-2 stages, radix-4 passes two: fewer sweeps over memory (n = 128: 8, 8, 2
    // instead of 4, 4, 4, 2; 8, 4, 4 measured the same). The r2c+c2r pair at 128^2 went from ~60 to ~52 us (double).
    for (; 8 * h <= n_; h *= 8) {
      for (long s0 = 0; s0 < n_; s0 += 8 * h)
        for (long j = 0; j < h; ++j) {
          const long es_h = h * es;
          T* r0 = re + (s0 + j) * es;
          T* i0 = im + (s0 + j) * es;
          if (j == 0) {  // twiddles 1, -+i and (1 -+ i)/sqrt 2 (all of the first pass, 1/h of the others)
            radix8_j0(r0, i0, r0 + es_h, i0 + es_h, r0 + 2 * es_h, i0 + 2 * es_h, r0 + 3 * es_h, i0 + 3 * es_h,
                      r0 + 4 * es_h, i0 + 4 * es_h, r0 + 5 * es_h, i0 + 5 * es_h, r0 + 6 * es_h, i0 + 6 * es_h,
                      r0 + 7 * es_h, i0 + 7 * es_h, lanes, sg);
            continue;
          }
          T w[14];
          const long idx[7] = {h + j, 2 * h + j, 3 * h + j, 4 * h + j, 5 * h + j, 6 * h + j, 7 * h + j};
          for (int k = 0; k < 7; ++k) {
            w[2 * k] = twr_[idx[k]];
            w[2 * k + 1] = sg * twi_[idx[k]];
          }
          radix8(r0, i0, r0 + es_h, i0 + es_h, r0 + 2 * es_h, i0 + 2 * es_h, r0 + 3 * es_h, i0 + 3 * es_h,
                 r0 + 4 * es_h, i0 + 4 * es_h, r0 + 5 * es_h, i0 + 5 * es_h, r0 + 6 * es_h, i0 + 6 * es_h,
                 r0 + 7 * es_h, i0 + 7 * es_h, lanes, w);
        }
    }
    for (; 2 * h < n_; h *= 4) {
      for (long s0 = 0; s0 < n_; s0 += 4 * h)
        for (long j = 0; j < h; ++j) {
          if (j == 0) {  // twiddles 1, 1 and -+i: no multiplications
            const long r0 = s0 * es, r1 = r0 + h * es, r2 = r1 + h * es, r3 = r2 + h * es;
            radix4_j0(re + r0, im + r0, re + r1, im + r1, re + r2, im + r2, re + r3, im + r3, lanes, sg);
            continue;
          }
          const T ar = twr_[h + j], ai = sg * twi_[h + j];            // stage span h
          const T br = twr_[2 * h + j], bi = sg * twi_[2 * h + j];    // stage span 2h, rows 0/2
          const T cr = twr_[3 * h + j], ci = sg * twi_[3 * h + j];    // stage span 2h, rows 1/3
          const long r0 = (s0 + j) * es, r1 = r0 + h * es, r2 = r1 + h * es, r3 = r2 + h * es;
          radix4(re + r0, im + r0, re + r1, im + r1, re + r2, im + r2, re + r3, im + r3, lanes, ar, ai, br, bi, cr,
                 ci);
        }
    }
    if (h < n_) {  // one radix-2 stage left (odd log2 n)
      for (long s0 = 0; s0 < n_; s0 += 2 * h)
        for (long j = 0; j < h; ++j) {
          const T wr = twr_[h + j], wi = sg * twi_[h + j];
          const long r0 = (s0 + j) * es, r1 = r0 + h * es;
          radix2(re + r0, im + r0, re + r1, im + r1, lanes, wr, wi);
        }
    }
  }

 private:
  // inlined into run() (and so into each of its clones): a call per butterfly group would cost more than the
  // 16-lane loops of the row pass
  FASTINTERP_FFT_INLINE static void radix2(T* __restrict xr, T* __restrict xi, T* __restrict yr, T* __restrict yi, long lanes, T wr,
                     T wi) {
    for (long l = 0; l < lanes; ++l) {
      const T tr = yr[l] * wr - yi[l] * wi, ti = yr[l] * wi + yi[l] * wr;
      const T ur = xr[l], ui = xi[l];
      xr[l] = ur + tr;
      xi[l] = ui + ti;
      yr[l] = ur - tr;
      yi[l] = ui - ti;
    }
  }
  // Three radix-2 stages on rows x0..x7 (= s0 + j + k h): spans h (pairs 01 23 45 67, twiddle w0), 2h (pairs 02 46
  // with w1, 13 57 with w2) and 4h (pairs 04, 15, 26, 37 with w3..w6); w holds (re, im) pairs, conjugated for inverse.
  FASTINTERP_FFT_INLINE static void radix8(T* __restrict x0r, T* __restrict x0i, T* __restrict x1r, T* __restrict x1i,
                                           T* __restrict x2r, T* __restrict x2i, T* __restrict x3r, T* __restrict x3i,
                                           T* __restrict x4r, T* __restrict x4i, T* __restrict x5r, T* __restrict x5i,
                                           T* __restrict x6r, T* __restrict x6i, T* __restrict x7r, T* __restrict x7i,
                                           long lanes, const T* w) {
    const T ar = w[0], ai = w[1], br = w[2], bi = w[3], cr = w[4], ci = w[5];
    const T d0r = w[6], d0i = w[7], d1r = w[8], d1i = w[9], d2r = w[10], d2i = w[11], d3r = w[12], d3i = w[13];
    for (long l = 0; l < lanes; ++l) {
      // span h
      T tr = x1r[l] * ar - x1i[l] * ai, ti = x1r[l] * ai + x1i[l] * ar;
      const T y0r = x0r[l] + tr, y0i = x0i[l] + ti, y1r = x0r[l] - tr, y1i = x0i[l] - ti;
      tr = x3r[l] * ar - x3i[l] * ai;
      ti = x3r[l] * ai + x3i[l] * ar;
      const T y2r = x2r[l] + tr, y2i = x2i[l] + ti, y3r = x2r[l] - tr, y3i = x2i[l] - ti;
      tr = x5r[l] * ar - x5i[l] * ai;
      ti = x5r[l] * ai + x5i[l] * ar;
      const T y4r = x4r[l] + tr, y4i = x4i[l] + ti, y5r = x4r[l] - tr, y5i = x4i[l] - ti;
      tr = x7r[l] * ar - x7i[l] * ai;
      ti = x7r[l] * ai + x7i[l] * ar;
      const T y6r = x6r[l] + tr, y6i = x6i[l] + ti, y7r = x6r[l] - tr, y7i = x6i[l] - ti;
      // span 2h
      tr = y2r * br - y2i * bi;
      ti = y2r * bi + y2i * br;
      const T z0r = y0r + tr, z0i = y0i + ti, z2r = y0r - tr, z2i = y0i - ti;
      tr = y3r * cr - y3i * ci;
      ti = y3r * ci + y3i * cr;
      const T z1r = y1r + tr, z1i = y1i + ti, z3r = y1r - tr, z3i = y1i - ti;
      tr = y6r * br - y6i * bi;
      ti = y6r * bi + y6i * br;
      const T z4r = y4r + tr, z4i = y4i + ti, z6r = y4r - tr, z6i = y4i - ti;
      tr = y7r * cr - y7i * ci;
      ti = y7r * ci + y7i * cr;
      const T z5r = y5r + tr, z5i = y5i + ti, z7r = y5r - tr, z7i = y5i - ti;
      // span 4h
      tr = z4r * d0r - z4i * d0i;
      ti = z4r * d0i + z4i * d0r;
      x0r[l] = z0r + tr;
      x0i[l] = z0i + ti;
      x4r[l] = z0r - tr;
      x4i[l] = z0i - ti;
      tr = z5r * d1r - z5i * d1i;
      ti = z5r * d1i + z5i * d1r;
      x1r[l] = z1r + tr;
      x1i[l] = z1i + ti;
      x5r[l] = z1r - tr;
      x5i[l] = z1i - ti;
      tr = z6r * d2r - z6i * d2i;
      ti = z6r * d2i + z6i * d2r;
      x2r[l] = z2r + tr;
      x2i[l] = z2i + ti;
      x6r[l] = z2r - tr;
      x6i[l] = z2i - ti;
      tr = z7r * d3r - z7i * d3i;
      ti = z7r * d3i + z7i * d3r;
      x3r[l] = z3r + tr;
      x3i[l] = z3i + ti;
      x7r[l] = z3r - tr;
      x7i[l] = z3i - ti;
    }
  }
  // radix8() at j = 0: twiddles 1 (span h), 1 and -i sg (span 2h), 1, (1 - i sg)/sqrt 2, -i sg, (-1 - i sg)/sqrt 2
  FASTINTERP_FFT_INLINE static void radix8_j0(T* __restrict x0r, T* __restrict x0i, T* __restrict x1r,
                                              T* __restrict x1i, T* __restrict x2r, T* __restrict x2i,
                                              T* __restrict x3r, T* __restrict x3i, T* __restrict x4r,
                                              T* __restrict x4i, T* __restrict x5r, T* __restrict x5i,
                                              T* __restrict x6r, T* __restrict x6i, T* __restrict x7r,
                                              T* __restrict x7i, long lanes, T sg) {
    const T r = static_cast<T>(0.70710678118654752440);
    for (long l = 0; l < lanes; ++l) {
      const T y0r = x0r[l] + x1r[l], y0i = x0i[l] + x1i[l], y1r = x0r[l] - x1r[l], y1i = x0i[l] - x1i[l];
      const T y2r = x2r[l] + x3r[l], y2i = x2i[l] + x3i[l], y3r = x2r[l] - x3r[l], y3i = x2i[l] - x3i[l];
      const T y4r = x4r[l] + x5r[l], y4i = x4i[l] + x5i[l], y5r = x4r[l] - x5r[l], y5i = x4i[l] - x5i[l];
      const T y6r = x6r[l] + x7r[l], y6i = x6i[l] + x7i[l], y7r = x6r[l] - x7r[l], y7i = x6i[l] - x7i[l];
      const T z0r = y0r + y2r, z0i = y0i + y2i, z2r = y0r - y2r, z2i = y0i - y2i;
      T tr = sg * y3i, ti = -sg * y3r;  // y3 * (-i sg)
      const T z1r = y1r + tr, z1i = y1i + ti, z3r = y1r - tr, z3i = y1i - ti;
      const T z4r = y4r + y6r, z4i = y4i + y6i, z6r = y4r - y6r, z6i = y4i - y6i;
      tr = sg * y7i;
      ti = -sg * y7r;
      const T z5r = y5r + tr, z5i = y5i + ti, z7r = y5r - tr, z7i = y5i - ti;
      x0r[l] = z0r + z4r;
      x0i[l] = z0i + z4i;
      x4r[l] = z0r - z4r;
      x4i[l] = z0i - z4i;
      tr = (z5r + sg * z5i) * r;  // z5 (1 - i sg) / sqrt 2
      ti = (z5i - sg * z5r) * r;
      x1r[l] = z1r + tr;
      x1i[l] = z1i + ti;
      x5r[l] = z1r - tr;
      x5i[l] = z1i - ti;
      tr = sg * z6i;  // z6 (-i sg)
      ti = -sg * z6r;
      x2r[l] = z2r + tr;
      x2i[l] = z2i + ti;
      x6r[l] = z2r - tr;
      x6i[l] = z2i - ti;
      tr = (sg * z7i - z7r) * r;  // z7 (-1 - i sg) / sqrt 2
      ti = -(z7i + sg * z7r) * r;
      x3r[l] = z3r + tr;
      x3i[l] = z3i + ti;
      x7r[l] = z3r - tr;
      x7i[l] = z3i - ti;
    }
  }
  // radix4() with a = b = 1 and c = -i sg (the j = 0 butterflies); the table's cos(pi/2) ~ 6e-17 becomes an exact 0
  FASTINTERP_FFT_INLINE static void radix4_j0(T* __restrict x0r, T* __restrict x0i, T* __restrict x1r,
                                              T* __restrict x1i, T* __restrict x2r, T* __restrict x2i,
                                              T* __restrict x3r, T* __restrict x3i, long lanes, T sg) {
    for (long l = 0; l < lanes; ++l) {
      const T p0r = x0r[l] + x1r[l], p0i = x0i[l] + x1i[l], p1r = x0r[l] - x1r[l], p1i = x0i[l] - x1i[l];
      const T p2r = x2r[l] + x3r[l], p2i = x2i[l] + x3i[l], p3r = x2r[l] - x3r[l], p3i = x2i[l] - x3i[l];
      x0r[l] = p0r + p2r;
      x0i[l] = p0i + p2i;
      x2r[l] = p0r - p2r;
      x2i[l] = p0i - p2i;
      const T tr = sg * p3i, ti = -sg * p3r;  // p3 * (-i sg)
      x1r[l] = p1r + tr;
      x1i[l] = p1i + ti;
      x3r[l] = p1r - tr;
      x3i[l] = p1i - ti;
    }
  }
  FASTINTERP_FFT_INLINE static void radix4(T* __restrict x0r, T* __restrict x0i, T* __restrict x1r, T* __restrict x1i, T* __restrict x2r,
                     T* __restrict x2i, T* __restrict x3r, T* __restrict x3i, long lanes, T ar, T ai, T br, T bi,
                     T cr, T ci) {
    for (long l = 0; l < lanes; ++l) {
      // first stage (span h): pairs (0,1) and (2,3), twiddle a
      T tr = x1r[l] * ar - x1i[l] * ai, ti = x1r[l] * ai + x1i[l] * ar;
      const T p0r = x0r[l] + tr, p0i = x0i[l] + ti, p1r = x0r[l] - tr, p1i = x0i[l] - ti;
      tr = x3r[l] * ar - x3i[l] * ai;
      ti = x3r[l] * ai + x3i[l] * ar;
      const T p2r = x2r[l] + tr, p2i = x2i[l] + ti, p3r = x2r[l] - tr, p3i = x2i[l] - ti;
      // second stage (span 2h): pairs (0,2) with twiddle b and (1,3) with twiddle c
      tr = p2r * br - p2i * bi;
      ti = p2r * bi + p2i * br;
      x0r[l] = p0r + tr;
      x0i[l] = p0i + ti;
      x2r[l] = p0r - tr;
      x2i[l] = p0i - ti;
      tr = p3r * cr - p3i * ci;
      ti = p3r * ci + p3i * cr;
      x1r[l] = p1r + tr;
      x1i[l] = p1i + ti;
      x3r[l] = p1r - tr;
      x3i[l] = p1i - ti;
    }
  }

  long n_ = 0;
  std::vector<T> twr_, twi_;
  std::vector<std::pair<long, long>> swaps_;
  std::vector<long> rev_;
};

// Register tiles for the row pass. Rows must be turned into LaneFFT's lane layout and back, which costs as much
// as the butterflies when done element by element; full blocks are therefore moved in 4x4 tiles of GCC/Clang
// vector-extension registers (compiled into the callers' AVX-512/AVX2/baseline clones). The tiles only move data,
// so the results are identical to the scalar loops used for partial blocks and by other compilers.
#if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTINTERP_NO_TILES)
#define FASTINTERP_FFT_TILES 1
// the tile functions are always inlined, so the ABI of passing vectors by value (-Wpsabi) never matters
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
namespace tile {
template <class T>
struct V4;
template <>
struct V4<double> {
  typedef double v __attribute__((vector_size(32)));
  typedef double u __attribute__((vector_size(32), aligned(alignof(double)), may_alias));
  typedef long long mask __attribute__((vector_size(32)));
};
template <>
struct V4<float> {
  typedef float v __attribute__((vector_size(16)));
  typedef float u __attribute__((vector_size(16), aligned(alignof(float)), may_alias));
  typedef int mask __attribute__((vector_size(16)));
};
#if defined(__clang__)
#define FASTINTERP_SHUF4(M, a, b, i0, i1, i2, i3) __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
#define FASTINTERP_SHUF4(M, a, b, i0, i1, i2, i3) __builtin_shuffle(a, b, M{i0, i1, i2, i3})
#endif
// unaligned vector access (u: element-aligned, may_alias); load returns a reference, not a vector: a vector return
// value draws GCC's -Wpsabi note for the non-AVX clones
template <class T>
FASTINTERP_FFT_INLINE const typename V4<T>::u& load(const T* p) {
  return *reinterpret_cast<const typename V4<T>::u*>(p);
}
template <class T>
FASTINTERP_FFT_INLINE void store(T* p, const typename V4<T>::v& v) {
  *reinterpret_cast<typename V4<T>::u*>(p) = v;
}
// (r0 r1 r2 r3) <- their transpose (as a 4x4 matrix of rows); named registers, not an array: GCC kept an array
// of vectors on the stack
template <class T>
FASTINTERP_FFT_INLINE void transpose(typename V4<T>::v& r0, typename V4<T>::v& r1, typename V4<T>::v& r2,
                                     typename V4<T>::v& r3) {
  using M = typename V4<T>::mask;
  if constexpr (sizeof(T) == 8) {
    // 256-bit: in-lane unpacks, then 128-bit halves (vunpck{l,h}pd + vperm2f128); one-step cross-lane shuffles
    // cost AVX2 several permutes each
    const auto u0 = FASTINTERP_SHUF4(M, r0, r1, 0, 4, 2, 6), u1 = FASTINTERP_SHUF4(M, r0, r1, 1, 5, 3, 7);
    const auto u2 = FASTINTERP_SHUF4(M, r2, r3, 0, 4, 2, 6), u3 = FASTINTERP_SHUF4(M, r2, r3, 1, 5, 3, 7);
    r0 = FASTINTERP_SHUF4(M, u0, u2, 0, 1, 4, 5);
    r1 = FASTINTERP_SHUF4(M, u1, u3, 0, 1, 4, 5);
    r2 = FASTINTERP_SHUF4(M, u0, u2, 2, 3, 6, 7);
    r3 = FASTINTERP_SHUF4(M, u1, u3, 2, 3, 6, 7);
  } else {
    // 128-bit: unpck{l,h}ps, movlhps, movhlps
    const auto u0 = FASTINTERP_SHUF4(M, r0, r1, 0, 4, 1, 5), u1 = FASTINTERP_SHUF4(M, r0, r1, 2, 6, 3, 7);
    const auto u2 = FASTINTERP_SHUF4(M, r2, r3, 0, 4, 1, 5), u3 = FASTINTERP_SHUF4(M, r2, r3, 2, 6, 3, 7);
    r0 = FASTINTERP_SHUF4(M, u0, u2, 0, 1, 4, 5);
    r1 = FASTINTERP_SHUF4(M, u0, u2, 2, 3, 6, 7);
    r2 = FASTINTERP_SHUF4(M, u1, u3, 0, 1, 4, 5);
    r3 = FASTINTERP_SHUF4(M, u1, u3, 2, 3, 6, 7);
  }
}
}  // namespace tile
#endif

// Batched real FFT of length n along rows. Rows are processed kBlock at a time in LaneFFT's lane layout (element k
// of row b at k * kBlock + b): the complex half-length transform z_m = x_{2m} + i x_{2m+1} is gathered straight
// into bit-reversed order (no separate permutation sweep), transformed, and unpacked/packed across lanes.
template <class T>
class RealFFT1D {
 public:
  static constexpr long kBlock = 16;  // rows transformed together (vector lanes)

  explicit RealFFT1D(long n, Backend backend = default_backend()) : n_(n), h_(n / 2), backend_(backend) {
    check_size(n, "FFT size");
    if (backend == Backend::fftw && !fftw_available())
      throw std::invalid_argument("fft backend 'fftw' was not compiled in");
#ifdef FASTINTERP_HAVE_FFTW
    if (backend == Backend::fftw) {
      fftw_ = std::make_unique<FFTWPair<T>>(1, &n_);
      return;
    }
#endif
    cfft_ = LaneFFT<T>(h_);
    cr_.resize(h_ + 1);
    ci_.resize(h_ + 1);
    for (long k = 0; k <= h_; ++k) {  // exp(-2 pi i k / n)
      const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n);
      cr_[k] = static_cast<T>(std::cos(a));
      ci_[k] = static_cast<T>(std::sin(a));
    }
    zr_.assign((h_ + 1) * kBlock, T(0));
    zi_.assign((h_ + 1) * kBlock, T(0));
    yr_.assign(h_ * kBlock, T(0));
    yi_.assign(h_ * kBlock, T(0));
  }
  long size() const { return n_; }
  Backend backend() const { return backend_; }

  FASTINTERP_SIMD_CLONES void forward(const T* x, long xs, T* re, T* im, long os, long batch) {
#ifdef FASTINTERP_HAVE_FFTW
    if (fftw_) {
      for (long b = 0; b < batch; ++b) fftw_->forward(x + b * xs, re + b * os, im + b * os);
      return;
    }
#endif
    const long h = h_, B = kBlock;
    T* __restrict zr = zr_.data();
    T* __restrict zi = zi_.data();
    for (long b0 = 0; b0 < batch; b0 += B) {
      const long nb = std::min(B, batch - b0);
      gather_pairs(x + b0 * xs, xs, nb, h, cfft_.bitrev(), zr, zi);
      cfft_.run(zr, zi, B, nb, false, true);
      // unpack in place: X_k = E_k + W^k O_k, E = (Z_k + conj Z_{h-k}) / 2, O = (Z_k - conj Z_{h-k}) / (2i);
      // row h of the scratch receives X_h
      for (long k = 0; k <= h / 2; ++k) {
        const long km = (h - k) % h;
        T* zkr = zr + k * B;
        T* zki = zi + k * B;
        T* zmr = zr + km * B;
        T* zmi = zi + km * B;
        if (k == 0) {
          T* xhr = zr + h * B;
          T* xhi = zi + h * B;
          for (long b = 0; b < nb; ++b) {
            const T a = zkr[b], c = zki[b];
            zkr[b] = a + c;
            zki[b] = T(0);
            xhr[b] = a - c;
            xhi[b] = T(0);
          }
          continue;
        }
        const T c = cr_[k], s = ci_[k];
        const T c2 = cr_[h - k], s2 = ci_[h - k];
        for (long b = 0; b < nb; ++b) {
          const T er = T(0.5) * (zkr[b] + zmr[b]), ei = T(0.5) * (zki[b] - zmi[b]);
          const T orr = T(0.5) * (zki[b] + zmi[b]), oi = T(-0.5) * (zkr[b] - zmr[b]);
          const T xr = er + c * orr - s * oi, xi = ei + c * oi + s * orr;
          // partner h-k: E_{h-k} = conj E_k, O_{h-k} = conj O_k (for k = h/2 it is the same bin; this value wins)
          const T pr = er + c2 * orr + s2 * oi, pi = -ei - c2 * oi + s2 * orr;
          zkr[b] = xr;
          zki[b] = xi;
          zmr[b] = pr;
          zmi[b] = pi;
        }
      }
      from_lanes(zr, h + 1, nb, re + b0 * os, os);
      from_lanes(zi, h + 1, nb, im + b0 * os, os);
    }
  }

  FASTINTERP_SIMD_CLONES void inverse(const T* re, const T* im, long is, T* x, long xs, long batch) {
#ifdef FASTINTERP_HAVE_FFTW
    if (fftw_) {
      for (long b = 0; b < batch; ++b) fftw_->inverse_destroy(re + b * is, im + b * is, x + b * xs);
      return;
    }
#endif
    const long h = h_, B = kBlock;
    const long* rev = cfft_.bitrev();
    T* __restrict zr = zr_.data();
    T* __restrict zi = zi_.data();
    T* __restrict yr = yr_.data();
    T* __restrict yi = yi_.data();
    for (long b0 = 0; b0 < batch; b0 += B) {
      const long nb = std::min(B, batch - b0);
      to_lanes(re + b0 * is, is, nb, h + 1, zr);
      to_lanes(im + b0 * is, is, nb, h + 1, zi);
      for (long b = 0; b < nb; ++b) zi[b] = zi[h * B + b] = T(0);  // Im of bins 0 and h is ignored
      // pack: Z_k = (X_k + conj X_{h-k}) + i conj(W^k) (X_k - conj X_{h-k}) over pairs (k, h-k), written to the
      // bit-reversed rows of y (the input order of the transform). k = 0 and k = h/2 have no partner row.
      for (long k = 0; k <= h / 2; ++k) {
        const long km = h - k;
        const T* xkr = zr + k * B;
        const T* xki = zi + k * B;
        const T* xmr = zr + km * B;
        const T* xmi = zi + km * B;
        T* ykr = yr + rev[k] * B;
        T* yki = yi + rev[k] * B;
        const T c = cr_[k], s = -ci_[k];  // conj(W^k) = (c, s)
        if (k == 0 || k == h / 2) {
          for (long b = 0; b < nb; ++b) {
            const T ar = xkr[b], ai = xki[b], br = xmr[b], bi = xmi[b];
            const T er = ar + br, ei = ai - bi;  // X_k + conj X_{h-k}
            const T dr = ar - br, di = ai + bi;  // X_k - conj X_{h-k}
            // i (c + i s)(dr + i di) = i (c dr - s di) - (c di + s dr)
            ykr[b] = er - (c * di + s * dr);
            yki[b] = ei + (c * dr - s * di);
          }
          continue;
        }
        T* ymr = yr + rev[km] * B;
        T* ymi = yi + rev[km] * B;
        const T c2 = cr_[km], s2 = -ci_[km];  // conj(W^{h-k})
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC ivdep
#endif
        for (long b = 0; b < nb; ++b) {  // rows k, h-k, rev[k], rev[h-k] are distinct: no aliasing
          const T ar = xkr[b], ai = xki[b], br = xmr[b], bi = xmi[b];
          const T er = ar + br, ei = ai - bi;
          const T dr = ar - br, di = ai + bi;
          ykr[b] = er - (c * di + s * dr);
          yki[b] = ei + (c * dr - s * di);
          // partner h-k: E' = conj(E), D' = -conj(D)
          const T d2r = -dr, d2i = di;
          ymr[b] = er - (c2 * d2i + s2 * d2r);
          ymi[b] = -ei + (c2 * d2r - s2 * d2i);
        }
      }
      cfft_.run(yr, yi, B, nb, true, true);
      interleave_from_lanes(yr, yi, h, nb, x + b0 * xs, xs);
    }
  }

 private:
  // zr[rev[m] B + b] = x[b xs + 2m], zi[rev[m] B + b] = x[b xs + 2m + 1]   (m < h, b < nb)
  FASTINTERP_FFT_INLINE static void gather_pairs(const T* x, long xs, long nb, long h, const long* rev, T* __restrict zr,
                           T* __restrict zi) {
    const long B = kBlock;
#ifdef FASTINTERP_FFT_TILES
    if (nb == B && h % 4 == 0) {
      using V = typename tile::V4<T>::v;
      using M = typename tile::V4<T>::mask;
      for (long b = 0; b < B; b += 4)
        for (long m = 0; m < h; m += 4) {
          V r0, r1, r2, r3, i0, i1, i2, i3;
          const auto split = [&](int q, V& r, V& i) {
            const T* p = x + (b + q) * xs + 2 * m;
            const V lo = tile::load<T>(p), hi = tile::load<T>(p + 4);
            if constexpr (sizeof(T) == 8) {  // in-lane: elements m, m+2, m+1, m+3 (the stores below undo it)
              r = FASTINTERP_SHUF4(M, lo, hi, 0, 4, 2, 6);
              i = FASTINTERP_SHUF4(M, lo, hi, 1, 5, 3, 7);
            } else {
              r = FASTINTERP_SHUF4(M, lo, hi, 0, 2, 4, 6);
              i = FASTINTERP_SHUF4(M, lo, hi, 1, 3, 5, 7);
            }
          };
          constexpr int q1 = sizeof(T) == 8 ? 2 : 1, q2 = sizeof(T) == 8 ? 1 : 2;
          split(0, r0, i0);
          split(1, r1, i1);
          split(2, r2, i2);
          split(3, r3, i3);
          tile::transpose<T>(r0, r1, r2, r3);
          tile::transpose<T>(i0, i1, i2, i3);
          tile::store<T>(zr + rev[m] * B + b, r0);
          tile::store<T>(zr + rev[m + q1] * B + b, r1);
          tile::store<T>(zr + rev[m + q2] * B + b, r2);
          tile::store<T>(zr + rev[m + 3] * B + b, r3);
          tile::store<T>(zi + rev[m] * B + b, i0);
          tile::store<T>(zi + rev[m + q1] * B + b, i1);
          tile::store<T>(zi + rev[m + q2] * B + b, i2);
          tile::store<T>(zi + rev[m + 3] * B + b, i3);
        }
      return;
    }
#endif
    for (long b = 0; b < nb; ++b)
      for (long m = 0; m < h; ++m) {
        zr[rev[m] * B + b] = x[b * xs + 2 * m];
        zi[rev[m] * B + b] = x[b * xs + 2 * m + 1];
      }
  }
  // dst[c ds + r] = src[r ss + c]   (r < rows, c < cols): 4x4 register tiles, scalar edges
  FASTINTERP_FFT_INLINE static void transpose_copy(const T* __restrict src, long ss, long rows, long cols,
                                                   T* __restrict dst, long ds) {
    long r0 = 0, c0 = 0;
#ifdef FASTINTERP_FFT_TILES
    using V = typename tile::V4<T>::v;
    r0 = rows & ~3L;
    c0 = cols & ~3L;
    for (long c = 0; c < c0; c += 4)
      for (long r = 0; r < r0; r += 4) {
        V v0 = tile::load<T>(src + r * ss + c), v1 = tile::load<T>(src + (r + 1) * ss + c);
        V v2 = tile::load<T>(src + (r + 2) * ss + c), v3 = tile::load<T>(src + (r + 3) * ss + c);
        tile::transpose<T>(v0, v1, v2, v3);
        tile::store<T>(dst + c * ds + r, v0);
        tile::store<T>(dst + (c + 1) * ds + r, v1);
        tile::store<T>(dst + (c + 2) * ds + r, v2);
        tile::store<T>(dst + (c + 3) * ds + r, v3);
      }
#endif
    for (long r = 0; r < rows; ++r)
      for (long c = r < r0 ? c0 : 0; c < cols; ++c) dst[c * ds + r] = src[r * ss + c];
  }
  // dst[b ds + k] = src[k B + b]   (k < count, b < nb)
  FASTINTERP_FFT_INLINE static void from_lanes(const T* src, long count, long nb, T* dst, long ds) {
    transpose_copy(src, kBlock, count, nb, dst, ds);
  }
  // dst[k B + b] = src[b ss + k]   (k < count, b < nb)
  FASTINTERP_FFT_INLINE static void to_lanes(const T* src, long ss, long nb, long count, T* dst) {
    transpose_copy(src, ss, nb, count, dst, kBlock);
  }
  // x[b xs + 2m] = zr[m B + b], x[b xs + 2m + 1] = zi[m B + b]   (m < h, b < nb)
  FASTINTERP_FFT_INLINE static void interleave_from_lanes(const T* __restrict zr, const T* __restrict zi, long h, long nb, T* __restrict x,
                                    long xs) {
    const long B = kBlock;
#ifdef FASTINTERP_FFT_TILES
    if (nb == B && h % 4 == 0) {
      using V = typename tile::V4<T>::v;
      using M = typename tile::V4<T>::mask;
      for (long b = 0; b < B; b += 4)
        for (long m = 0; m < h; m += 4) {
          V r0 = tile::load<T>(zr + m * B + b), r1 = tile::load<T>(zr + (m + 1) * B + b);
          V r2 = tile::load<T>(zr + (m + 2) * B + b), r3 = tile::load<T>(zr + (m + 3) * B + b);
          V i0 = tile::load<T>(zi + m * B + b), i1 = tile::load<T>(zi + (m + 1) * B + b);
          V i2 = tile::load<T>(zi + (m + 2) * B + b), i3 = tile::load<T>(zi + (m + 3) * B + b);
          if constexpr (sizeof(T) == 8) {  // rows in the order m, m+2, m+1, m+3: then in-lane unpacks interleave
            tile::transpose<T>(r0, r2, r1, r3);
            tile::transpose<T>(i0, i2, i1, i3);
            std::swap(r1, r2);  // lanes b+1 and b+2 came back in r2 and r1
            std::swap(i1, i2);
          } else {
            tile::transpose<T>(r0, r1, r2, r3);
            tile::transpose<T>(i0, i1, i2, i3);
          }
          const auto put = [&](int q, const V& r, const V& i) {
            T* p = x + (b + q) * xs + 2 * m;
            if constexpr (sizeof(T) == 8) {
              tile::store<T>(p, FASTINTERP_SHUF4(M, r, i, 0, 4, 2, 6));
              tile::store<T>(p + 4, FASTINTERP_SHUF4(M, r, i, 1, 5, 3, 7));
            } else {
              tile::store<T>(p, FASTINTERP_SHUF4(M, r, i, 0, 4, 1, 5));
              tile::store<T>(p + 4, FASTINTERP_SHUF4(M, r, i, 2, 6, 3, 7));
            }
          };
          put(0, r0, i0);
          put(1, r1, i1);
          put(2, r2, i2);
          put(3, r3, i3);
        }
      return;
    }
#endif
    for (long b = 0; b < nb; ++b)
      for (long m = 0; m < h; ++m) {
        x[b * xs + 2 * m] = zr[m * B + b];
        x[b * xs + 2 * m + 1] = zi[m * B + b];
      }
  }

  long n_, h_;
  Backend backend_;
  LaneFFT<T> cfft_;
  std::vector<T> cr_, ci_, zr_, zi_, yr_, yi_;
#ifdef FASTINTERP_HAVE_FFTW
  std::unique_ptr<FFTWPair<T>> fftw_;
#endif
};

#if defined(FASTINTERP_FFT_TILES) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Real 2-D FFT of an n0 x n1 row-major array; spectrum n0 x (n1/2+1) (numpy's rfft2 layout).
template <class T>
class RealFFT2D {
 public:
  RealFFT2D(long n0, long n1, Backend backend = default_backend())
      : n0_(n0), n1_(n1), m_(n1 / 2 + 1), backend_(backend), rows_(n1, Backend::builtin) {
    check_size(n0, "FFT size n0");
    check_size(n1, "FFT size n1");
    if (backend == Backend::fftw && !fftw_available())
      throw std::invalid_argument("fft backend 'fftw' was not compiled in");
#ifdef FASTINTERP_HAVE_FFTW
    if (backend == Backend::fftw) {
      const long n[2] = {n0, n1};
      fftw_ = std::make_unique<FFTWPair<T>>(2, n);
    }
#endif
    cols_ = LaneFFT<T>(n0);
    // columns in chunks of up to 256 KiB per plane (re + im within a 1 MiB L2). Wide chunks matter: every
    // butterfly loop then runs over many lanes (at 128^2 all 65 columns in one go is ~15% faster than 32 + 32 + 1).
    chunk_ = std::max<long>(8, (1L << 18) / (n0 * static_cast<long>(sizeof(T))));
    sr_.resize(n0 * m_);
    si_.resize(n0 * m_);
  }
  long n0() const { return n0_; }
  long n1() const { return n1_; }
  long half() const { return m_; }
  Backend backend() const { return backend_; }

  // `cols` (default: all m columns) serves band-limited data such as 2/3-dealiased spectra: forward computes only
  // columns b < cols of the spectrum exactly (the others hold the row transforms only and must be ignored);
  // inverse_destroy requires columns b >= cols to be zero and skips their column transforms (a transform of
  // zeros is zeros, so the result is bit-identical). The FFTW backend always does the full transform.
  void forward(const T* x, T* re, T* im, long cols = -1) {
#ifdef FASTINTERP_HAVE_FFTW
    if (fftw_) return fftw_->forward(x, re, im);
#endif
    const long mc = cols < 0 ? m_ : std::min(cols, m_);
    rows_.forward(x, n1_, re, im, m_, n0_);
    for (long c0 = 0; c0 < mc; c0 += chunk_) cols_.run(re + c0, im + c0, m_, std::min(chunk_, mc - c0), false);
  }
  void inverse_destroy(T* re, T* im, T* x, long cols = -1) {
#ifdef FASTINTERP_HAVE_FFTW
    if (fftw_) return fftw_->inverse_destroy(re, im, x);
#endif
    const long mc = cols < 0 ? m_ : std::min(cols, m_);
    for (long c0 = 0; c0 < mc; c0 += chunk_) cols_.run(re + c0, im + c0, m_, std::min(chunk_, mc - c0), true);
    rows_.inverse(re, im, m_, x, n1_, n0_);
  }
#ifdef FASTINTERP_HAVE_FFTW
  FFTWPair<T>* fftw_pair() { return fftw_.get(); }
#endif
  void inverse(const T* re, const T* im, T* x) {
    std::copy(re, re + n0_ * m_, sr_.begin());
    std::copy(im, im + n0_ * m_, si_.begin());
    inverse_destroy(sr_.data(), si_.data(), x);
  }

 private:
  long n0_, n1_, m_;
  Backend backend_;
  RealFFT1D<T> rows_;
  LaneFFT<T> cols_;
  long chunk_ = 64;
  std::vector<T> sr_, si_;
#ifdef FASTINTERP_HAVE_FFTW
  std::unique_ptr<FFTWPair<T>> fftw_;
#endif
};

}  // namespace fft
}  // namespace fastinterp
