// csrc/rng.hpp -- counter-based standard normals: the value of normal number i of a stream depends only on
// (seed, tag, trajectory, step, i), never on thread count, batch split or call order, so a trajectory can be
// resumed at any step bit-identically.
//
//   fastinterp::rng::Stream s{seed, tag, traj, step};
//   s.fill(first, count, out);          // out[j] = normal number first + j of the stream (double)
//
// Generator: Philox4x32-10 (Salmon et al., SC'11) keyed by the 64-bit seed; its 128-bit counter is
// (pair index, tag << 16 | pair index >> 32, step, trajectory): 2^48 normal pairs per stream, 16-bit tag
// (which quantity: field, noise, initial condition), 32-bit step and 32-bit trajectory index.
// One Philox block (4 x 32 bits) gives two 64-bit words, one per normal of a pair. A normal is drawn by the
// ziggurat method (Marsaglia & Tsang 2000) with 256 layers: 8 bits pick the layer, 1 bit the sign, 53 bits the
// abscissa; the ~1% of draws that miss the layer's inner rectangle restart the exact rejection loop with fresh
// words from the same counter under a re-keyed Philox (key depends on attempt and lane), so every normal is an
// exact N(0, 1) draw that still depends only on its own counter. The layer table is solved numerically at start-up
// (no magic constants).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FASTINTERP_NO_CLONES)
#define FASTINTERP_RNG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTINTERP_RNG_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FASTINTERP_RNG_INLINE __attribute__((always_inline)) inline
#else
#define FASTINTERP_RNG_INLINE inline
#endif

// AVX2 kernels for CPUs without AVX-512 (picked at run time). The portable loops below compile well for AVX-512,
// which has 64-bit multiplies and int64 -> double conversions, but GCC's AVX2 code emulates both (a Philox round
// cost ~5x the instructions of the hand-written one; Gaussian fields at 128^2 were ~55% normal generation).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(FASTINTERP_NO_CLONES)
#include <immintrin.h>
#define FASTINTERP_RNG_AVX2 1
#endif

namespace fastinterp {
namespace rng {

inline void philox_round(uint32_t c[4], uint32_t k0, uint32_t k1) {
  const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0];
  const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}

// Philox4x32-10 of counter c under key (k0, k1); result in c.
inline void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    philox_round(c, k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Ziggurat tables for f(x) = exp(-x^2/2) with N equal-area layers: X[1] = r, X[N] = 0, X[0] = v / f(r).
struct Ziggurat {
  static constexpr int N = 256;
  double X[N + 1];
  double F[N + 1];      // f(X[i])
  double ratio[N];      // X[i+1] / X[i]: inner-rectangle acceptance threshold of layer i
  alignas(16) double XR[N][2];  // {X[i], ratio[i]}: one 16-byte load per draw in the AVX2 fast path
  double r = 0, v = 0;  // base-layer edge and common layer area

  static double f(double x) { return std::exp(-0.5 * x * x); }
  // residual of the top-layer condition for a trial r: 0 when layer N-1 reaches f = 1 exactly
  double build(double rr) {
    r = rr;
    v = rr * f(rr) + 1.2533141373155002512  /* sqrt(pi/2) */ * std::erfc(rr / std::sqrt(2.0));
    X[1] = rr;
    for (int i = 1; i < N - 1; ++i) {
      const double y = f(X[i]) + v / X[i];
      if (y >= 1.0) return 1.0;  // layers too thick: r too small
      X[i + 1] = std::sqrt(-2.0 * std::log(y));
    }
    return f(X[N - 1]) + v / X[N - 1] - 1.0;
  }
  Ziggurat() {
    double lo = 2.0, hi = 6.0;  // residual(lo) > 0 > residual(hi)
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      (build(mid) > 0 ? lo : hi) = mid;
    }
    build(hi);
    X[0] = v / f(r);
    X[N] = 0.0;
    for (int i = 0; i <= N; ++i) F[i] = f(X[i]);
    for (int i = 0; i < N; ++i) {
      ratio[i] = X[i + 1] / X[i];
      XR[i][0] = X[i];
      XR[i][1] = ratio[i];
    }
  }
};

inline const Ziggurat& ziggurat() {
  static const Ziggurat z;
  return z;
}

// Whether Stream::pairs uses the AVX2 kernels: CPUs with AVX2 that do not take the portable loops' x86-64-v4 clone
// (AVX-512 F, BW, CD, DQ, VL); `_core.set_rng_kernel` switches it (tests compare the two). Both give the same bits.
inline bool& avx2_flag() {
#ifdef FASTINTERP_RNG_AVX2
  static bool on = __builtin_cpu_supports("avx2") &&
                   !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                     __builtin_cpu_supports("avx512vl"));
#else
  static bool on = false;
#endif
  return on;
}
inline bool avx2_available() {
#ifdef FASTINTERP_RNG_AVX2
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

constexpr double kTwo53Inv = 1.0 / 9007199254740992.0;  // 2^-53

// index of the lowest set bit of m != 0
inline long ctz64(uint64_t m) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(m);
#else
  long i = 0;
  while (!(m & 1)) m >>= 1, ++i;
  return i;
#endif
}

struct Stream {
  uint64_t seed = 0;
  uint32_t tag = 0;   // < 2^16
  uint64_t traj = 0;  // < 2^32
  uint64_t step = 0;  // < 2^32

  void counter(uint64_t pair, uint32_t c[4]) const {
    c[0] = static_cast<uint32_t>(pair);
    c[1] = (tag << 16) | static_cast<uint32_t>((pair >> 32) & 0xFFFFu);
    c[2] = static_cast<uint32_t>(step);
    c[3] = static_cast<uint32_t>(traj);
  }
  // The Philox key of re-key `attempt` (0 = the main key, the seed's two halves).
  void key(uint32_t attempt, uint32_t& k0, uint32_t& k1) const {
    k0 = static_cast<uint32_t>(seed);
    k1 = static_cast<uint32_t>(seed >> 32);
    if (attempt) {
      k0 ^= 0x85EBCA6Bu * attempt;
      k1 += 0xC2B2AE35u * attempt + 0x27D4EB2Fu;
    }
  }
  // The two 64-bit words of block `pair` under re-key `attempt` (0 = the main key).
  void words(uint64_t pair, uint32_t attempt, uint64_t w[2]) const {
    uint32_t c[4];
    counter(pair, c);
    uint32_t k0, k1;
    key(attempt, k0, k1);
    philox4x32_10(c, k0, k1);
    w[0] = (static_cast<uint64_t>(c[0]) << 32) | c[1];
    w[1] = (static_cast<uint64_t>(c[2]) << 32) | c[3];
  }
  // Exact ziggurat draw; w is the main word of attempt `first` (0: the main key), the slow path re-keys by
  // (attempt, lane). zig(w1, pair, lane, 1) with w1 attempt 1's word continues zig(w0, pair, lane) after attempt 0
  // was rejected: the same value.
  double zig(uint64_t w, uint64_t pair, int lane, uint32_t first = 0) const {
    const Ziggurat& Z = ziggurat();
    for (uint32_t attempt = first;; ++attempt) {
      if (attempt != first) {
        uint64_t ww[2];
        words(pair, 2 * attempt + static_cast<uint32_t>(lane), ww);
        w = ww[0];
      }
      const int j = static_cast<int>(w & 0xFF);
      const bool neg = (w >> 8) & 1;
      const double u = static_cast<double>(w >> 11) * kTwo53Inv;  // [0, 1)
      const double x = u * Z.X[j];
      if (u < Z.ratio[j]) return neg ? -x : x;
      // slow path: needs more uniforms, from re-keyed blocks of the same counter
      uint64_t extra[2];
      if (j == 0) {  // tail beyond r (Marsaglia 1964): its own rejection loop, which must not restart the ziggurat
        for (uint32_t t = 0;; ++t) {
          words(pair, 0x10000u + ((attempt * 4096u + t) << 1) + static_cast<uint32_t>(lane), extra);
          const double u1 = (static_cast<double>(extra[0] >> 11) + 1.0) * kTwo53Inv;  // (0, 1]
          const double u2 = (static_cast<double>(extra[1] >> 11) + 1.0) * kTwo53Inv;
          const double a = -std::log(u1) / Z.r, b = -std::log(u2);
          if (2.0 * b > a * a) return neg ? -(Z.r + a) : Z.r + a;
        }
      }
      words(pair, 0x10000u + ((attempt * 4096u) << 1) + static_cast<uint32_t>(lane), extra);
      const double u1 = (static_cast<double>(extra[0] >> 11) + 1.0) * kTwo53Inv;
      // wedge between X[j+1] and X[j]: accept under the curve
      const double y = Z.F[j] + (u1 - kTwo53Inv) * (Z.F[j + 1] - Z.F[j]);  // [F_j, F_{j+1})
      if (y < std::exp(-0.5 * x * x)) return neg ? -x : x;
    }
  }
  // Philox4x32-10 of one counter under key (k0, k1), written on scalar 64-bit locals holding 32-bit words (no
  // array, one lane width throughout) so that loops calling it vectorise across blocks, 4 (AVX2) or 8 (AVX-512) per
  // register: ~2x faster than 32-bit locals, for which the vectoriser shuffles between lane widths every round.
  // Same bits as words().
  FASTINTERP_RNG_INLINE void block(uint64_t p, uint32_t key0, uint32_t key1, uint64_t& w0, uint64_t& w1) const {
    constexpr uint64_t kM32 = 0xFFFFFFFFu;
    uint64_t x0 = p & kM32, x1 = (static_cast<uint64_t>(tag) << 16) | ((p >> 32) & 0xFFFFu);
    uint64_t x2 = static_cast<uint32_t>(step), x3 = static_cast<uint32_t>(traj);
    uint64_t k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r) {
      const uint64_t q0 = static_cast<uint64_t>(static_cast<uint32_t>(x0)) * 0xD2511F53u;
      const uint64_t q1 = static_cast<uint64_t>(static_cast<uint32_t>(x2)) * 0xCD9E8D57u;
      x0 = (q1 >> 32) ^ x1 ^ k0;
      x2 = (q0 >> 32) ^ x3 ^ k1;
      x1 = q1 & kM32;
      x3 = q0 & kM32;
      k0 = (k0 + 0x9E3779B9u) & kM32;
      k1 = (k1 + 0xBB67AE85u) & kM32;
    }
    w0 = (x0 << 32) | x1;
    w1 = (x2 << 32) | x3;
  }
  // Main-key words of `count` consecutive pairs from p0.
  FASTINTERP_RNG_CLONES void words_batch(uint64_t p0, long count, uint64_t* __restrict w0,
                                         uint64_t* __restrict w1) const {
    const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (long i = 0; i < count; ++i) block(p0 + static_cast<uint64_t>(i), k0, k1, w0[i], w1[i]);
  }
#ifdef FASTINTERP_RNG_AVX2
  // Philox4x32-10 in AVX2, four blocks a register, each 32-bit word in a 64-bit lane: vpmuludq multiplies the low
  // halves, so the words' high halves may hold garbage until the final masks (they never reach a low half).
  // K0, K1: the ten round keys, broadcast. Returns the blocks' two 64-bit words (as block() does).
  __attribute__((target("avx2"))) static void round_keys_avx2(uint32_t k0, uint32_t k1, __m256i K0[10], __m256i K1[10]) {
    for (int r = 0; r < 10; ++r) {
      K0[r] = _mm256_set1_epi64x(k0);
      K1[r] = _mm256_set1_epi64x(k1);
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
  }
  __attribute__((target("avx2"))) FASTINTERP_RNG_INLINE void block_avx2(__m256i p, const __m256i K0[10],
                                                                        const __m256i K1[10], __m256i& w0,
                                                                        __m256i& w1) const {
    const __m256i C0 = _mm256_set1_epi64x(0xD2511F53), C1 = _mm256_set1_epi64x(0xCD9E8D57);
    const __m256i M32 = _mm256_set1_epi64x(0xFFFFFFFF), M16 = _mm256_set1_epi64x(0xFFFF);
    const __m256i TG = _mm256_set1_epi64x(static_cast<int64_t>(tag) << 16);
    __m256i x0 = p, x1 = _mm256_or_si256(TG, _mm256_and_si256(_mm256_srli_epi64(p, 32), M16));
    __m256i x2 = _mm256_set1_epi64x(static_cast<uint32_t>(step)), x3 = _mm256_set1_epi64x(static_cast<uint32_t>(traj));
    for (int r = 0; r < 10; ++r) {
      const __m256i q0 = _mm256_mul_epu32(x0, C0), q1 = _mm256_mul_epu32(x2, C1);
      x0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(q1, 32), x1), K0[r]);
      x2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(q0, 32), x3), K1[r]);
      x1 = q1;
      x3 = q0;
    }
    w0 = _mm256_or_si256(_mm256_slli_epi64(x0, 32), _mm256_and_si256(x1, M32));
    w1 = _mm256_or_si256(_mm256_slli_epi64(x2, 32), _mm256_and_si256(x3, M32));
  }
  // words_batch() in AVX2.
  __attribute__((target("avx2"))) void words_batch_avx2(uint64_t p0, long count, uint64_t* __restrict w0,
                                                        uint64_t* __restrict w1) const {
    __m256i K0[10], K1[10];
    round_keys_avx2(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), K0, K1);
    const __m256i step4 = _mm256_set1_epi64x(4);
    __m256i p = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<int64_t>(p0)), _mm256_setr_epi64x(0, 1, 2, 3));
    long i = 0;
    for (; i + 4 <= count; i += 4, p = _mm256_add_epi64(p, step4)) {
      __m256i a, b;
      block_avx2(p, K0, K1, a, b);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + i), a);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + i), b);
    }
    for (; i < count; ++i)
      block(p0 + static_cast<uint64_t>(i), static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), w0[i],
            w1[i]);
  }
  // words_list() in AVX2.
  __attribute__((target("avx2"))) void words_list_avx2(const uint64_t* __restrict pairs, long count,
                                                       uint32_t attempt, uint64_t* __restrict w0) const {
    uint32_t k0, k1;
    key(attempt, k0, k1);
    __m256i K0[10], K1[10];
    round_keys_avx2(k0, k1, K0, K1);
    long i = 0;
    for (; i + 4 <= count; i += 4) {
      __m256i a, b;
      block_avx2(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pairs + i)), K0, K1, a, b);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + i), a);
    }
    for (; i < count; ++i) {
      uint64_t unused;
      block(pairs[i], k0, k1, w0[i], unused);
    }
  }
  // zig_fast() in AVX2: the layer's {X, ratio} by one 16-byte load per draw, indexed from the words in memory
  // (faster than two vgatherqpd per four draws on a Zen 3 core: fields 1.16x); the 53-bit abscissa converted exactly
  // as two 32-bit halves.
  __attribute__((target("avx2"))) static uint64_t zig_fast_avx2(const uint64_t* __restrict w, long count,
                                                                double* __restrict z) {
    const Ziggurat& Z = ziggurat();
    const __m256i M32 = _mm256_set1_epi64x(0xFFFFFFFF);
    const __m256i one = _mm256_set1_epi64x(1), bias = _mm256_set1_epi64x(0x4330000000000000);  // 2^52
    const __m256d two52 = _mm256_set1_pd(4503599627370496.0), two32 = _mm256_set1_pd(4294967296.0);
    const __m256d scale = _mm256_set1_pd(kTwo53Inv);
    uint64_t miss = 0;
    long i = 0;
    for (; i + 4 <= count; i += 4) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i));
      const __m128d t0 = _mm_load_pd(Z.XR[w[i] & 0xFF]), t1 = _mm_load_pd(Z.XR[w[i + 1] & 0xFF]);
      const __m128d t2 = _mm_load_pd(Z.XR[w[i + 2] & 0xFF]), t3 = _mm_load_pd(Z.XR[w[i + 3] & 0xFF]);
      const __m256d a = _mm256_insertf128_pd(_mm256_castpd128_pd256(t0), t2, 1);  // X0 R0 X2 R2
      const __m256d b = _mm256_insertf128_pd(_mm256_castpd128_pd256(t1), t3, 1);  // X1 R1 X3 R3
      const __m256d X = _mm256_unpacklo_pd(a, b), R = _mm256_unpackhi_pd(a, b);
      const __m256i m = _mm256_srli_epi64(v, 11);  // < 2^53
      const __m256d lo = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(m, M32), bias)), two52);
      const __m256d hi = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(m, 32), bias)), two52);
      const __m256d u = _mm256_mul_pd(_mm256_add_pd(_mm256_mul_pd(hi, two32), lo), scale);  // exact, = m 2^-53
      const __m256d x = _mm256_mul_pd(u, X);
      const __m256i sign = _mm256_slli_epi64(_mm256_and_si256(_mm256_srli_epi64(v, 8), one), 63);
      _mm256_storeu_pd(z + i, _mm256_xor_pd(x, _mm256_castsi256_pd(sign)));
      const __m256d in = _mm256_cmp_pd(u, R, _CMP_LT_OQ);
      miss |= static_cast<uint64_t>(~_mm256_movemask_pd(in) & 0xF) << i;
    }
    if (i < count) miss |= zig_fast(w + i, count - i, z + i) << i;
    return miss;
  }
#endif
  // First words of the listed pairs under re-key `attempt` != 0 (the key words() uses).
  FASTINTERP_RNG_CLONES void words_list(const uint64_t* __restrict pairs, long count, uint32_t attempt,
                                        uint64_t* __restrict w0) const {
    uint32_t k0, k1;
    key(attempt, k0, k1);
    for (long i = 0; i < count; ++i) {
      uint64_t unused;
      block(pairs[i], k0, k1, w0[i], unused);
    }
  }
  // The listed pairs' first words under re-key `attempt` (AVX2 kernel where Stream::pairs uses one).
  void words_list_any(const uint64_t* pairs, long count, uint32_t attempt, uint64_t* w0) const {
#ifdef FASTINTERP_RNG_AVX2
    if (avx2_flag()) return words_list_avx2(pairs, count, attempt, w0);
#endif
    words_list(pairs, count, attempt, w0);
  }
  // zig()'s attempt 0 after a fast-path miss, given the first word `extra` of its first re-keyed block: the tail
  // layer is finished here through zig(); a wedge draw is accepted (true, value in z) or rejected (false: zig()
  // goes on with attempt 1, whose main words the caller draws in one batch).
  bool zig_miss(uint64_t w, uint64_t extra, uint64_t pair, int lane, double& z) const {
    const Ziggurat& Z = ziggurat();
    const int j = static_cast<int>(w & 0xFF);
    if (j == 0) {
      z = zig(w, pair, lane);
      return true;
    }
    const bool neg = (w >> 8) & 1;
    const double x = static_cast<double>(w >> 11) * kTwo53Inv * Z.X[j];
    const double u1 = (static_cast<double>(extra >> 11) + 1.0) * kTwo53Inv;
    const double y = Z.F[j] + (u1 - kTwo53Inv) * (Z.F[j + 1] - Z.F[j]);
    z = neg ? -x : x;
    return y < std::exp(-0.5 * x * x);
  }
  // Ziggurat fast path over a batch of count <= 64 words, branch-free so that it vectorises (table gathers): z[i]
  // gets the draw when it lies inside its layer's inner rectangle (~99%); bit i of the result is set otherwise, and
  // the caller redoes those few with zig(), which agrees with the fast path on the others -- no bits change.
  FASTINTERP_RNG_CLONES static uint64_t zig_fast(const uint64_t* __restrict w, long count, double* __restrict z) {
    const Ziggurat& Z = ziggurat();
    const double* __restrict X = Z.X;
    const double* __restrict R = Z.ratio;
    uint64_t miss = 0;
    for (long i = 0; i < count; ++i) {
      const uint64_t v = w[i];
      const int j = static_cast<int>(v & 0xFF);
      const double u = static_cast<double>(static_cast<int64_t>(v >> 11)) * kTwo53Inv;
      const double x = u * X[j];
      z[i] = ((v >> 8) & 1) ? -x : x;
      miss |= static_cast<uint64_t>(!(u < R[j])) << i;
    }
    return miss;
  }
  // Both normals of pairs p0 .. p0 + count - 1: z0[i], z1[i]. Works in chunks of kChunk pairs: fast path for all
  // (vectorised), then the ~1.5% misses of each lane together, whose first re-keyed Philox blocks are one
  // vectorised run instead of a latency-bound scalar block each; the ~45% of those that the wedge rejects draw
  // attempt 1's words in a second vectorised run. Every value is exactly zig()'s.
  void pairs(uint64_t p0, long count, double* z0, double* z1) const {
    constexpr long kChunk = 512;
    uint64_t w[2][kChunk], mp[kChunk], ex[kChunk];
    long mi[kChunk];
    for (long b = 0; b < count; b += kChunk) {
      const long nb = std::min(kChunk, count - b);
#ifdef FASTINTERP_RNG_AVX2
      const bool avx2 = avx2_flag();
      if (avx2)
        words_batch_avx2(p0 + static_cast<uint64_t>(b), nb, w[0], w[1]);
      else
#endif
        words_batch(p0 + static_cast<uint64_t>(b), nb, w[0], w[1]);
      for (int lane = 0; lane < 2; ++lane) {
        double* z = (lane ? z1 : z0) + b;
        long nm = 0;
        for (long c = 0; c < nb; c += 64) {
          const long cn = std::min<long>(64, nb - c);
#ifdef FASTINTERP_RNG_AVX2
          uint64_t m = avx2 ? zig_fast_avx2(w[lane] + c, cn, z + c) : zig_fast(w[lane] + c, cn, z + c);
#else
          uint64_t m = zig_fast(w[lane] + c, cn, z + c);
#endif
          for (; m; m &= m - 1) {
            const long i = c + ctz64(m);
            mi[nm] = i;
            mp[nm++] = p0 + static_cast<uint64_t>(b + i);
          }
        }
        words_list_any(mp, nm, 0x10000u + static_cast<uint32_t>(lane), ex);  // zig()'s attempt-0 re-key
        long nr = 0;  // rejected by the wedge: compacted to the front of mi / mp
        for (long k = 0; k < nm; ++k)
          if (!zig_miss(w[lane][mi[k]], ex[k], mp[k], lane, z[mi[k]])) {
            mi[nr] = mi[k];
            mp[nr++] = mp[k];
          }
        words_list_any(mp, nr, 2u + static_cast<uint32_t>(lane), ex);  // zig()'s attempt-1 main words
        for (long k = 0; k < nr; ++k) z[mi[k]] = zig(ex[k], mp[k], lane, 1);
      }
    }
  }
  // Normal numbers first .. first + count - 1 (pair p holds numbers 2p, 2p+1).
  void fill(uint64_t first, long count, double* out) const {
    long i = 0;
    if ((first & 1) == 0 && count >= 2) {  // bulk: whole pairs
      double z0[64], z1[64];
      while (count - i >= 2) {
        const long np = std::min<long>((count - i) / 2, 64);
        pairs((first + static_cast<uint64_t>(i)) >> 1, np, z0, z1);
        for (long q = 0; q < np; ++q) {
          out[i + 2 * q] = z0[q];
          out[i + 2 * q + 1] = z1[q];
        }
        i += 2 * np;
      }
    }
    while (i < count) {
      const uint64_t num = first + static_cast<uint64_t>(i);
      const uint64_t pair = num >> 1;
      uint64_t w[2];
      words(pair, 0, w);
      if ((num & 1) == 0 && i + 1 < count) {
        out[i] = zig(w[0], pair, 0);
        out[i + 1] = zig(w[1], pair, 1);
        i += 2;
      } else {
        out[i] = zig(w[num & 1], pair, static_cast<int>(num & 1));
        i += 1;
      }
    }
  }
  // Both normals of pair p.
  void pair(uint64_t p, double& z0, double& z1) const {
    uint64_t w[2];
    words(p, 0, w);
    z0 = zig(w[0], p, 0);
    z1 = zig(w[1], p, 1);
  }
};

}  // namespace rng
}  // namespace fastinterp
