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
// below: radix-4/radix-2 iterative complex FFT with exact precomputed twiddles (computed in double,
// rounded once), the standard half-length packing trick for real transforms, and the 2-D transform as
// row r2c (rows gathered in blocks of kBlock into a transposed scratch so they are vectorised across
// rows) followed by column complex FFTs vectorised across columns. Backend::fftw exists only when the
// build defines FASTINTERP_HAVE_FFTW (CMake option FASTINTERP_USE_FFTW, on when libfftw3 is found).
// FFTW is GPL: a wheel that is redistributed must be built with -DFASTINTERP_USE_FFTW=OFF.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

// Hot loops are compiled twice on x86-64 Linux with GCC (AVX2+FMA and baseline) and picked at load time
// (target_clones/ifunc), so a portable wheel still runs vectorised on AVX2 machines. FMA changes roundoff only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FASTINTERP_NO_CLONES)
#define FASTINTERP_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FASTINTERP_SIMD_CLONES
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
      if (i < r) swaps_.push_back({i, r});
    }
  }
  long size() const { return n_; }

  // In-place transform; sign -1 (forward) when !inverse, +1 when inverse. Unnormalised.
  FASTINTERP_SIMD_CLONES void run(T* re, T* im, long es, long lanes, bool inverse) const {
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
    // radix-4 passes fuse two radix-2 stages (half the memory sweeps)
    for (; 2 * h < n_; h *= 4) {
      for (long s0 = 0; s0 < n_; s0 += 4 * h)
        for (long j = 0; j < h; ++j) {
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
  FASTINTERP_SIMD_CLONES static void radix2(T* __restrict xr, T* __restrict xi, T* __restrict yr, T* __restrict yi, long lanes, T wr,
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
  FASTINTERP_SIMD_CLONES static void radix4(T* __restrict x0r, T* __restrict x0i, T* __restrict x1r, T* __restrict x1i, T* __restrict x2r,
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
};

// Batched real FFT of length n along rows.
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
    for (long b0 = 0; b0 < batch; b0 += B) {
      const long nb = std::min(B, batch - b0);
      // gather: z_m = x_{2m} + i x_{2m+1}, transposed so the rows of the block are the lanes
      for (long b = 0; b < nb; ++b) {
        const T* xb = x + (b0 + b) * xs;
        for (long m = 0; m < h; ++m) {
          zr_[m * B + b] = xb[2 * m];
          zi_[m * B + b] = xb[2 * m + 1];
        }
      }
      cfft_.run(zr_.data(), zi_.data(), B, nb, false);
      // unpack: X_k = E_k + W^k O_k, E = (Z_k + conj Z_{h-k}) / 2, O = (Z_k - conj Z_{h-k}) / (2i)
      for (long k = 0; k <= h / 2; ++k) {
        const long km = (h - k) % h;
        const T* zkr = &zr_[k * B];
        const T* zki = &zi_[k * B];
        const T* zmr = &zr_[km * B];
        const T* zmi = &zi_[km * B];
        if (k == 0) {
          for (long b = 0; b < nb; ++b) {
            re[(b0 + b) * os] = zkr[b] + zki[b];
            im[(b0 + b) * os] = T(0);
            re[(b0 + b) * os + h] = zkr[b] - zki[b];
            im[(b0 + b) * os + h] = T(0);
          }
          continue;
        }
        const T c = cr_[k], s = ci_[k];
        const T c2 = cr_[h - k], s2 = ci_[h - k];
        for (long b = 0; b < nb; ++b) {
          const T er = T(0.5) * (zkr[b] + zmr[b]), ei = T(0.5) * (zki[b] - zmi[b]);
          const T orr = T(0.5) * (zki[b] + zmi[b]), oi = T(-0.5) * (zkr[b] - zmr[b]);
          re[(b0 + b) * os + k] = er + c * orr - s * oi;
          im[(b0 + b) * os + k] = ei + c * oi + s * orr;
          // partner h-k: E_{h-k} = conj E_k, O_{h-k} = conj O_k
          re[(b0 + b) * os + h - k] = er + c2 * orr + s2 * oi;
          im[(b0 + b) * os + h - k] = -ei - c2 * oi + s2 * orr;
        }
      }
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
    for (long b0 = 0; b0 < batch; b0 += B) {
      const long nb = std::min(B, batch - b0);
      for (long b = 0; b < nb; ++b) {
        const T* rb = re + (b0 + b) * is;
        const T* ib = im + (b0 + b) * is;
        for (long k = 0; k <= h; ++k) {
          zr_[k * B + b] = rb[k];
          zi_[k * B + b] = (k == 0 || k == h) ? T(0) : ib[k];
        }
      }
      // pack: Z_k = (X_k + conj X_{h-k}) + i conj(W^k) (X_k - conj X_{h-k}), in place over pairs (k, h-k)
      for (long k = 0; k <= h / 2; ++k) {
        const long km = h - k;
        T* xkr = &zr_[k * B];
        T* xki = &zi_[k * B];
        T* xmr = &zr_[km * B];
        T* xmi = &zi_[km * B];
        const T c = cr_[k], s = -ci_[k];      // conj(W^k) = (c, s)
        const T c2 = cr_[km], s2 = -ci_[km];  // conj(W^{h-k})
        for (long b = 0; b < nb; ++b) {
          const T ar = xkr[b], ai = xki[b], br = xmr[b], bi = xmi[b];
          const T er = ar + br, ei = ai - bi;  // X_k + conj X_{h-k}
          const T dr = ar - br, di = ai + bi;  // X_k - conj X_{h-k}
          // i (c + i s)(dr + i di) = i (c dr - s di) - (c di + s dr)
          xkr[b] = er - (c * di + s * dr);
          xki[b] = ei + (c * dr - s * di);
          if (km != k && km != h) {
            // partner: E' = conj(E), D' = -conj(D)
            const T d2r = -dr, d2i = di;
            xmr[b] = er - (c2 * d2i + s2 * d2r);
            xmi[b] = -ei + (c2 * d2r - s2 * d2i);
          }
        }
      }
      cfft_.run(zr_.data(), zi_.data(), B, nb, true);
      for (long b = 0; b < nb; ++b) {
        T* xb = x + (b0 + b) * xs;
        for (long m = 0; m < h; ++m) {
          xb[2 * m] = zr_[m * B + b];
          xb[2 * m + 1] = zi_[m * B + b];
        }
      }
    }
  }

 private:
  long n_, h_;
  Backend backend_;
  LaneFFT<T> cfft_;
  std::vector<T> cr_, ci_, zr_, zi_;
#ifdef FASTINTERP_HAVE_FFTW
  std::unique_ptr<FFTWPair<T>> fftw_;
#endif
};

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
    // columns in chunks whose working set stays in L2 (~256 KiB)
    chunk_ = std::max<long>(8, (1L << 15) / (n0 * static_cast<long>(sizeof(T))));
    sr_.resize(n0 * m_);
    si_.resize(n0 * m_);
  }
  long n0() const { return n0_; }
  long n1() const { return n1_; }
  long half() const { return m_; }
  Backend backend() const { return backend_; }

  void forward(const T* x, T* re, T* im) {
#ifdef FASTINTERP_HAVE_FFTW
    if (fftw_) return fftw_->forward(x, re, im);
#endif
    rows_.forward(x, n1_, re, im, m_, n0_);
    for (long c0 = 0; c0 < m_; c0 += chunk_) cols_.run(re + c0, im + c0, m_, std::min(chunk_, m_ - c0), false);
  }
  void inverse_destroy(T* re, T* im, T* x) {
#ifdef FASTINTERP_HAVE_FFTW
    if (fftw_) return fftw_->inverse_destroy(re, im, x);
#endif
    for (long c0 = 0; c0 < m_; c0 += chunk_) cols_.run(re + c0, im + c0, m_, std::min(chunk_, m_ - c0), true);
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
