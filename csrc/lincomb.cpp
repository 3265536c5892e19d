// csrc/lincomb.cpp -- fastinterp._core.lincomb: the fused stage update outputs[o] = sum_i coef[o, i] * inputs[i]
// (elementwise) on the CPU, for up to 8 inputs and 4 outputs of mixed dtypes (float64, float32, bfloat16, float16).
// The CPU twin of the Triton kernel in fastinterp/kernels/lincomb.py, called through fastinterp.kernels.lincomb_cpu.
//
// One pass over memory: the range is cut into blocks of kBlock elements; each input block is read once (converted
// to the math type into a small scratch row when its dtype differs, or when an output aliases it), each output block
// is a sum of coef * row over the rows, written once (converted on store). Math is float64 if any input is float64,
// else float32; every output is rounded once to its own dtype, to nearest even (float64 math -> bf16/fp16 goes
// through round-to-odd float32, which is exact single rounding, not torch's double rounding via float32).
// Aliasing is safe because a block is fully read before any of its outputs is stored.
//
// The tensors cross the boundary as Python objects whose metadata and data pointers are read and checked here (see
// the binding section for why and what that costs); no libtorch link.
#include <pybind11/pybind11.h>
#include <pthread.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>

namespace py = pybind11;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FASTINTERP_NO_CLONES)
#define FASTINTERP_LC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTINTERP_LC_CLONES
#endif

// Helpers are force-inlined into the cloned loops so that they are compiled for each clone's target.
#if defined(__GNUC__) || defined(__clang__)
#define FASTINTERP_LC_INLINE __attribute__((always_inline)) inline
#define FASTINTERP_LC_RESTRICT __restrict__
#else
#define FASTINTERP_LC_INLINE inline
#define FASTINTERP_LC_RESTRICT
#endif

namespace fastinterp {
namespace lincomb {

// dtype codes: the index of the tensor's dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16)
enum Code : int { kF64 = 0, kF32 = 1, kBF16 = 2, kF16 = 3 };
constexpr int kNumCodes = 4;
constexpr int kItemSize[kNumCodes] = {8, 4, 2, 2};
constexpr const char* kCodeName[kNumCodes] = {"float64", "float32", "bfloat16", "float16"};

constexpr int kMaxIn = 8, kMaxOut = 4;
// Elements per block: the scratch rows (8 x 256 doubles = 16 KiB at most) stay in L1 next to the streams. Of 128,
// 256, 512 and 1024, 256 was the fastest or within noise of it for every dtype at N = 1e4..1e6 (fp32, 5 -> 3 at
// 1e4: 10.7, 9.9, 10.1, 10.9 us; fp64 at 1e6: 1024 was 25% slower, its scratch no longer fitting L1).
constexpr long kBlock = 256;

struct Plan {
  int ni = 0, no = 0;
  long n = 0;
  bool f64 = false;  // math type: double if any input is float64, else float
  const unsigned char* in[kMaxIn] = {};
  int in_code[kMaxIn] = {};
  bool in_copy[kMaxIn] = {};  // read through scratch: dtype != math type, or an output aliases it
  unsigned char* out[kMaxOut] = {};
  int out_code[kMaxOut] = {};
  double coef[kMaxOut][kMaxIn] = {};
};

// ---- scalar conversions (exact; written branch-free so the block loops vectorise) -------------------------------

FASTINTERP_LC_INLINE float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
FASTINTERP_LC_INLINE uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

FASTINTERP_LC_INLINE float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

// Round to nearest even; NaN stays NaN (quieted) instead of carrying into the exponent.
// (f != f is one vector compare; the integer test of the exponent and mantissa bits costs three on AVX2.)
FASTINTERP_LC_INLINE uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>(f != f ? nan : rounded);
}

// IEEE half -> float, exact (subnormals, inf, NaN). F. Giesen's half_to_float_fast4: the subnormal branch subtracts
// normal numbers, so it is also exact with flush-to-zero / denormals-are-zero on (torch.set_flush_denormal).
FASTINTERP_LC_INLINE float f16_to_f32(uint16_t h) {
  const uint32_t shifted_exp = 0x7C00u << 13;
  uint32_t o = (static_cast<uint32_t>(h) & 0x7FFFu) << 13;
  const uint32_t exp = o & shifted_exp;
  o += (127u - 15u) << 23;
  const uint32_t infnan = o + ((128u - 16u) << 23);
  const float sub = bits_f32(o + (1u << 23)) - bits_f32(113u << 23);
  o = exp == shifted_exp ? infnan : o;
  o = exp == 0 ? f32_bits(sub) : o;
  return bits_f32(o | ((static_cast<uint32_t>(h) & 0x8000u) << 16));
}

// float -> IEEE half, round to nearest even (F. Giesen's float_to_half_fast3_rtne): overflow -> inf, NaN -> qNaN,
// subnormal results by one float addition of a magic number (round to nearest even in the FPU).
FASTINTERP_LC_INLINE uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  const uint32_t sub = f32_bits(bits_f32(a) + bits_f32(denorm_magic)) - denorm_magic;
  const uint32_t norm = (a + ((15u - 127u) << 23) + 0xFFFu + ((a >> 13) & 1u)) >> 13;
  const uint32_t special = a > 0x7F800000u ? 0x7E00u : 0x7C00u;
  uint32_t r = a < (113u << 23) ? sub : norm;
  r = a >= ((127u + 16u) << 23) ? special : r;
  return static_cast<uint16_t>(r | sign);
}

// double -> float rounded to odd: the truncation, with its last bit set when inexact. Rounding that float to
// bf16 or fp16 (>= 13 fewer significand bits, same or narrower exponent range) is then the correctly rounded
// double -> bf16 / fp16 value, with no double-rounding error.
FASTINTERP_LC_INLINE float f64_to_f32_odd(double d) {
  const float f = static_cast<float>(d);
  uint32_t u = f32_bits(f);
  const double back = static_cast<double>(f);
  const bool inexact = back != d && d == d;
  const bool away = (back < 0 ? -back : back) > (d < 0 ? -d : d);
  u -= (inexact && away) ? 1u : 0u;
  u |= inexact ? 1u : 0u;
  return bits_f32(u);
}

// fp16 <-> fp32 with F16C (vcvtph2ps / vcvtps2ph, exact, round to nearest even whatever MXCSR says): GCC does not
// vectorise the branch-free software conversions above (it keeps them scalar, ~10x slower than the fp32 path), so
// x86 CPUs with F16C (every x86-64-v3 one) take these, picked at run time; others take the software loops.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTINTERP_LC_F16C 1
__attribute__((target("avx,f16c"))) void f16_to_f32_f16c(const uint16_t* p, float* d, long m) {
  long j = 0;
  for (; j + 8 <= m; j += 8)
    _mm256_storeu_ps(d + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j))));
  for (; j < m; ++j) d[j] = f16_to_f32(p[j]);
}
__attribute__((target("avx,f16c"))) void f32_to_f16_f16c(const float* a, uint16_t* p, long m) {
  long j = 0;
  for (; j + 8 <= m; j += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(a + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; j < m; ++j) p[j] = f32_to_f16(a[j]);
}
bool detect_f16c() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}
const bool kHaveF16C = detect_f16c();
#else
constexpr bool kHaveF16C = false;
#endif

FASTINTERP_LC_INLINE void f16_to_f32_block(const uint16_t* FASTINTERP_LC_RESTRICT p, float* FASTINTERP_LC_RESTRICT d,
                                           long m) {
#ifdef FASTINTERP_LC_F16C
  if (kHaveF16C) return f16_to_f32_f16c(p, d, m);
#endif
  for (long j = 0; j < m; ++j) d[j] = f16_to_f32(p[j]);
}

FASTINTERP_LC_INLINE void f32_to_f16_block(const float* FASTINTERP_LC_RESTRICT a, uint16_t* FASTINTERP_LC_RESTRICT p,
                                           long m) {
#ifdef FASTINTERP_LC_F16C
  if (kHaveF16C) return f32_to_f16_f16c(a, p, m);
#endif
  for (long j = 0; j < m; ++j) p[j] = f32_to_f16(a[j]);
}

// ---- block loops --------------------------------------------------------------------------------------------------

// Input block (m elements from element s) -> scratch row in the math type T.
template <class T>
FASTINTERP_LC_INLINE void load_block(const unsigned char* base, int code, long s, long m, T* FASTINTERP_LC_RESTRICT d) {
  switch (code) {
    case kF64: {
      const double* FASTINTERP_LC_RESTRICT p = reinterpret_cast<const double*>(base) + s;
      for (long j = 0; j < m; ++j) d[j] = static_cast<T>(p[j]);  // T is double whenever an input is float64
      break;
    }
    case kF32: {
      const float* FASTINTERP_LC_RESTRICT p = reinterpret_cast<const float*>(base) + s;
      for (long j = 0; j < m; ++j) d[j] = static_cast<T>(p[j]);
      break;
    }
    case kBF16: {
      const uint16_t* FASTINTERP_LC_RESTRICT p = reinterpret_cast<const uint16_t*>(base) + s;
      for (long j = 0; j < m; ++j) d[j] = static_cast<T>(bf16_to_f32(p[j]));
      break;
    }
    default: {
      const uint16_t* p = reinterpret_cast<const uint16_t*>(base) + s;
      if constexpr (sizeof(T) == 8) {
        alignas(64) float tmp[kBlock];
        f16_to_f32_block(p, tmp, m);
        for (long j = 0; j < m; ++j) d[j] = tmp[j];
      } else {
        f16_to_f32_block(p, d, m);
      }
      break;
    }
  }
}

// Accumulator block in the math type T -> output block of another dtype (one rounding).
template <class T>
FASTINTERP_LC_INLINE void store_block(const T* FASTINTERP_LC_RESTRICT a, unsigned char* base, int code, long s, long m) {
  switch (code) {
    case kF64: {
      double* FASTINTERP_LC_RESTRICT p = reinterpret_cast<double*>(base) + s;
      for (long j = 0; j < m; ++j) p[j] = static_cast<double>(a[j]);
      break;
    }
    case kF32: {
      float* FASTINTERP_LC_RESTRICT p = reinterpret_cast<float*>(base) + s;
      for (long j = 0; j < m; ++j) p[j] = static_cast<float>(a[j]);
      break;
    }
    case kBF16: {
      uint16_t* FASTINTERP_LC_RESTRICT p = reinterpret_cast<uint16_t*>(base) + s;
      if constexpr (sizeof(T) == 8) {
        for (long j = 0; j < m; ++j) p[j] = f32_to_bf16(f64_to_f32_odd(a[j]));
      } else {
        for (long j = 0; j < m; ++j) p[j] = f32_to_bf16(a[j]);
      }
      break;
    }
    default: {
      uint16_t* p = reinterpret_cast<uint16_t*>(base) + s;
      if constexpr (sizeof(T) == 8) {
        alignas(64) float tmp[kBlock];
        for (long j = 0; j < m; ++j) tmp[j] = f64_to_f32_odd(a[j]);
        f32_to_f16_block(tmp, p, m);
      } else {
        f32_to_f16_block(a, p, m);
      }
      break;
    }
  }
}

// dst[j] = sum_{i < NI} c[i] * rows[i][j], left to right (the Triton kernel's order). NI is a template parameter so
// the sum is unrolled and the j loop vectorises with every row pointer in a register.
template <int NI, class T>
FASTINTERP_LC_INLINE void combine_n(const T* const* rows, const T* c, T* FASTINTERP_LC_RESTRICT dst, long m) {
  const T* FASTINTERP_LC_RESTRICT r0 = rows[0];
  const T* FASTINTERP_LC_RESTRICT r1 = rows[NI > 1 ? 1 : 0];
  const T* FASTINTERP_LC_RESTRICT r2 = rows[NI > 2 ? 2 : 0];
  const T* FASTINTERP_LC_RESTRICT r3 = rows[NI > 3 ? 3 : 0];
  const T* FASTINTERP_LC_RESTRICT r4 = rows[NI > 4 ? 4 : 0];
  const T* FASTINTERP_LC_RESTRICT r5 = rows[NI > 5 ? 5 : 0];
  const T* FASTINTERP_LC_RESTRICT r6 = rows[NI > 6 ? 6 : 0];
  const T* FASTINTERP_LC_RESTRICT r7 = rows[NI > 7 ? 7 : 0];
  const T c0 = c[0], c1 = c[NI > 1 ? 1 : 0], c2 = c[NI > 2 ? 2 : 0], c3 = c[NI > 3 ? 3 : 0];
  const T c4 = c[NI > 4 ? 4 : 0], c5 = c[NI > 5 ? 5 : 0], c6 = c[NI > 6 ? 6 : 0], c7 = c[NI > 7 ? 7 : 0];
  for (long j = 0; j < m; ++j) {
    T acc = c0 * r0[j];
    if (NI > 1) acc += c1 * r1[j];
    if (NI > 2) acc += c2 * r2[j];
    if (NI > 3) acc += c3 * r3[j];
    if (NI > 4) acc += c4 * r4[j];
    if (NI > 5) acc += c5 * r5[j];
    if (NI > 6) acc += c6 * r6[j];
    if (NI > 7) acc += c7 * r7[j];
    dst[j] = acc;
  }
}

template <class T>
FASTINTERP_LC_INLINE void combine(int ni, const T* const* rows, const T* c, T* FASTINTERP_LC_RESTRICT dst, long m) {
  switch (ni) {
    case 1: combine_n<1>(rows, c, dst, m); break;
    case 2: combine_n<2>(rows, c, dst, m); break;
    case 3: combine_n<3>(rows, c, dst, m); break;
    case 4: combine_n<4>(rows, c, dst, m); break;
    case 5: combine_n<5>(rows, c, dst, m); break;
    case 6: combine_n<6>(rows, c, dst, m); break;
    case 7: combine_n<7>(rows, c, dst, m); break;
    default: combine_n<8>(rows, c, dst, m); break;
  }
}

template <class T>
FASTINTERP_LC_INLINE void run_range(const Plan& p, long begin, long end) {
  constexpr int math = sizeof(T) == 8 ? kF64 : kF32;
  alignas(64) T scratch[kMaxIn][kBlock];
  alignas(64) T acc[kBlock];
  T c[kMaxOut][kMaxIn];
  for (int o = 0; o < p.no; ++o)
    for (int i = 0; i < p.ni; ++i) c[o][i] = static_cast<T>(p.coef[o][i]);
  const T* rows[kMaxIn];
  for (long s = begin; s < end; s += kBlock) {
    const long m = std::min(kBlock, end - s);
    for (int i = 0; i < p.ni; ++i) {
      if (p.in_copy[i]) {
        load_block<T>(p.in[i], p.in_code[i], s, m, scratch[i]);
        rows[i] = scratch[i];
      } else {
        rows[i] = reinterpret_cast<const T*>(p.in[i]) + s;
      }
    }
    for (int o = 0; o < p.no; ++o) {
      // an output in the math type is summed straight into place: no input row reads its memory (in_copy)
      if (p.out_code[o] == math) {
        combine<T>(p.ni, rows, c[o], reinterpret_cast<T*>(p.out[o]) + s, m);
      } else {
        combine<T>(p.ni, rows, c[o], acc, m);
        store_block<T>(acc, p.out[o], p.out_code[o], s, m);
      }
    }
  }
}

FASTINTERP_LC_CLONES void run_f32(const Plan& p, long begin, long end) { run_range<float>(p, begin, end); }
FASTINTERP_LC_CLONES void run_f64(const Plan& p, long begin, long end) { run_range<double>(p, begin, end); }

void run(const Plan& p, long begin, long end) {
  if (p.f64)
    run_f64(p, begin, end);
  else
    run_f32(p, begin, end);
}

// ---- threads ------------------------------------------------------------------------------------------------------
//
// A persistent pool rather than std::threads spawned per call (csrc/pde_common.hpp's parallel_workers). Measured on
// the 2-core VM (fp32, 5 inputs -> 3 outputs, best of 7, other jobs running): waking a pooled helper costs ~10 us,
// spawning and joining one ~30 us. At N = 1e5 one thread took 53 us, two pooled 45 us, two spawned 66 us; at 3e5
// 193 / 100 / 121 us; from 1e6 on (600 us and up) the two were within noise. Spawning pays only from ~2e5 on.
//
// - The range is cut into contiguous, block-aligned chunks that the calling thread and the woken helpers claim from
//   an atomic counter. The caller starts at once and never waits for a helper that has not started: a helper that
//   wakes late (its core busy, as on a shared 2-core machine, where a fixed split made 2 threads slower than 1)
//   finds the work done and goes back to sleep. Each element is computed by one thread with the same arithmetic,
//   so results never depend on the thread count or on who claimed what.
// - Idle helpers spin for kSpinMicros, then sleep on a condition variable (woken only if someone sleeps). A job lives
//   on the caller's stack: a helper registers as active before reading it, and the caller unpublishes it, then
//   waits for the active ones, before returning.
// - Calls from several Python threads: one call at a time owns the pool (try_lock); a call that finds it busy runs
//   single-threaded on its own thread instead of waiting, so two callers never deadlock or oversubscribe.
// - fork: the child has none of the parent's worker threads; a pthread_atfork child handler drops (leaks) the
//   parent's pool, whose mutexes may be held, and the child builds a fresh one on its first threaded call.
// - Interpreter exit: the pool is never destroyed and its threads are detached, so exit never joins (never hangs)
//   and no worker can touch a destroyed object while the process ends.
FASTINTERP_LC_INLINE void cpu_relax() {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// How long an idle helper spins before it sleeps. RK4 step above at N = 1e5: 210 us with helpers that sleep at once,
// 189 us spinning 50 us, 178 us spinning 200 us; at 1e6: 2.7 / 1.8 / 2.4 ms. The spin costs at most this much of a
// core after each threaded call (torch's own OpenMP workers spin far longer).
constexpr int kSpinMicros = 50;

class Pool {
 public:
  // Runs body(c) for every chunk c in [0, chunks) on the calling thread and up to nt - 1 helpers. Returns false
  // (running nothing) if another call owns the pool. Rethrows the first exception of any chunk.
  template <class F>
  bool run(int nt, long chunks, F&& body) {
    std::unique_lock<std::mutex> own(owner_, std::try_to_lock);
    if (!own.owns_lock()) return false;
    grow(nt - 1);
    Job job;
    job.body = &body;
    job.fn = &invoke<std::remove_reference_t<F>>;
    job.chunks = chunks;
    job.helpers = nt - 1;
    job_.store(&job);
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {  // helpers past their spin: wake them (a spinning helper needs no syscall)
      { std::lock_guard<std::mutex> lock(mu_); }
      wake_.notify_all();
    }
    job.work();
    job_.store(nullptr);  // helpers that arrive from now on find nothing to do
    for (int spins = 0; active_.load() != 0; ++spins) {  // the active ones are finishing their last chunk
      if (spins < 4096)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    if (job.error) std::rethrow_exception(job.error);
    return true;
  }

 private:
  struct Job {
    void* body = nullptr;
    void (*fn)(void*, long) = nullptr;
    long chunks = 0;
    int helpers = 0;
    std::atomic<long> next{0};
    std::exception_ptr error;
    std::mutex error_mu;
    void work() {
      for (long c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
        try {
          fn(body, c);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!error) error = std::current_exception();
        }
      }
    }
  };

  template <class F>
  static void invoke(void* body, long c) {
    (*static_cast<F*>(body))(c);
  }

  // Called by the owner before it posts a job: a new helper starts from the current generation, so however late it
  // starts it waits for the next post rather than joining a stale one.
  void grow(int helpers) {
    while (static_cast<int>(workers_) < helpers) {
      const int w = static_cast<int>(workers_) + 1;  // helper ids 1, 2, ...
      const uint64_t now = generation_.load();
      std::thread([this, w, now] { loop(w, now); }).detach();
      ++workers_;
    }
  }

  void loop(int w, uint64_t seen) {
    for (;;) {
      // Spin a little before sleeping: the updates of one RK step come microseconds apart, and a futex wake-up
      // costs the caller ~10 us here (as much as the work of a 2-thread call at N = 1e5).
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      for (int k = 0; generation_.load() == seen; ++k) {
        cpu_relax();
        if ((k & 255) == 255 && std::chrono::steady_clock::now() > until) {
          sleepers_.fetch_add(1);
          {
            std::unique_lock<std::mutex> lock(mu_);
            wake_.wait(lock, [&] { return generation_.load() != seen; });
          }
          sleepers_.fetch_sub(1);
        }
      }
      seen = generation_.load();
      // Registered as active before reading the job: the caller unpublishes the job, then waits for active_ == 0,
      // so a job read here is alive until this helper's decrement.
      active_.fetch_add(1);
      Job* job = job_.load();
      if (job != nullptr && w <= job->helpers) job->work();
      active_.fetch_sub(1);
    }
  }

  std::mutex owner_;  // held by the call that owns the pool
  std::mutex mu_;     // pairs with wake_ for the sleeping helpers
  std::condition_variable wake_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};    // helpers that may be reading job_
  std::atomic<int> sleepers_{0};  // helpers waiting on wake_
  unsigned workers_ = 0;          // touched only by the owner
};

std::atomic<Pool*> g_pool{nullptr};

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) {
    Pool* fresh = new Pool();
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel))
      p = fresh;
    else
      delete fresh;  // another thread won; p now holds its pool
  }
  return *p;
}

void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }

// Threads get at least this many bytes of traffic each (inputs read + outputs written): a call stays on one thread
// below 512 KiB. Measured on an RK4 step of 4 updates (3 -> 2, 4 -> 2, 4 -> 2, 3 -> 2, fp32, 2 threads allowed) on the
// quiet VM, against the eager torch loop: with 1 MiB per thread the step was 1.34x eager at N = 5e4 and 1.62x at 3e4;
// with 256 KiB, 1.75x and 1.91x (and 2.86x instead of 2.17x at 1e5); 1e4 (200-240 KB an update) was 1.87x either way.
constexpr long kMinBytesPerThread = 256 * 1024;
// Chunks each thread claims (about): enough to even out a late start, few enough that the counter stays cheap.
constexpr long kChunksPerThread = 4;

void execute(const Plan& p, int threads) {
  long bytes_per_elem = 0;
  for (int i = 0; i < p.ni; ++i) bytes_per_elem += kItemSize[p.in_code[i]];
  for (int o = 0; o < p.no; ++o) bytes_per_elem += kItemSize[p.out_code[o]];
  const long blocks = (p.n + kBlock - 1) / kBlock;
  long nt = std::min<long>(threads, (p.n * bytes_per_elem) / kMinBytesPerThread);
  nt = std::max<long>(1, std::min(nt, blocks));
  if (nt == 1) {
    run(p, 0, p.n);
    return;
  }
  const long chunks = std::min(blocks, nt * kChunksPerThread);
  const long per = (blocks + chunks - 1) / chunks;  // blocks per chunk
  auto body = [&](long c) {
    const long b = std::min(p.n, c * per * kBlock), e = std::min(p.n, (c + 1) * per * kBlock);
    if (b < e) run(p, b, e);
  };
  if (!pool().run(static_cast<int>(nt), chunks, body)) run(p, 0, p.n);
}

// ---- binding ------------------------------------------------------------------------------------------------------
//
// The arguments are the torch tensors themselves, read through the Python object protocol (dtype, is_cpu, shape,
// is_contiguous(), data_ptr(), stride()): no libtorch link, no torch headers, and every check done here, strictly,
// before any memory is touched. Measured on the 2-core VM, CPU time per call of 5 fp32 inputs -> 3 outputs at N = 1
// (so almost all overhead): tensor.numpy() is ~1.0 us per fp32 tensor (~1.8 us per bf16 uint16 view) before pybind11's
// array casts; raw data_ptr() integers validated in Python cost 8.5 us per call (0.6-0.8 us of attribute reads and
// bytecode per tensor, plus ~1.3 us to convert the lists of integers); the same checks here cost 4.9 us (~0.37 us
// per tensor, mostly torch's own attribute getters). An update at N = 1e4 moves 200-320 KB in 3-5 us, so the
// boundary decides the small-N speed.

struct Names {  // interned attribute names and torch's dtype objects, set up on first use (the GIL serialises it)
  bool ready = false;
  PyObject *dtype, *is_cpu, *is_contiguous, *shape, *data_ptr, *stride, *device, *tensor_type;
  PyObject* dtypes[kNumCodes];
};
Names g_names;

Names& names() {
  Names& nm = g_names;
  if (nm.ready) return nm;
  PyObject* torch = PyDict_GetItemString(PyImport_GetModuleDict(), "torch");  // borrowed
  if (torch == nullptr) throw py::type_error("lincomb_cpu takes torch tensors (import torch first)");
  py::handle t(torch);
  const char* dtype_names[kNumCodes] = {"float64", "float32", "bfloat16", "float16"};
  for (int c = 0; c < kNumCodes; ++c) nm.dtypes[c] = py::object(t.attr(dtype_names[c])).release().ptr();
  nm.tensor_type = py::object(t.attr("Tensor")).release().ptr();
  nm.dtype = PyUnicode_InternFromString("dtype");
  nm.is_cpu = PyUnicode_InternFromString("is_cpu");
  nm.is_contiguous = PyUnicode_InternFromString("is_contiguous");
  nm.shape = PyUnicode_InternFromString("shape");
  nm.data_ptr = PyUnicode_InternFromString("data_ptr");
  nm.stride = PyUnicode_InternFromString("stride");
  nm.device = PyUnicode_InternFromString("device");
  nm.ready = true;
  return nm;
}

// A new reference, or the pending Python exception rethrown.
py::object checked(PyObject* p) {
  if (p == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(p);
}

std::string repr_of(PyObject* obj, PyObject* attr) {
  PyObject* v = PyObject_GetAttr(obj, attr);
  if (v == nullptr) {
    PyErr_Clear();
    return "?";
  }
  return py::str(py::reinterpret_steal<py::object>(v)).cast<std::string>();
}

std::string shape_repr(PyObject* shape) {
  std::string s = "(";
  const Py_ssize_t nd = PyTuple_GET_SIZE(shape);
  for (Py_ssize_t d = 0; d < nd; ++d)
    s += py::str(PyTuple_GET_ITEM(shape, d)).cast<std::string>() + (nd == 1 || d + 1 < nd ? "," : "") +
         (d + 1 < nd ? " " : "");
  return s + ")";
}

// Reads one tensor argument: its dtype code and data pointer. `shape` is input 0's, to compare with (nullptr for
// input 0 and coef, whose shape is returned in *shape_out). Arrays must be contiguous with one of the four dtypes;
// coef (is_coef) must be float64 and has its strides checked by the caller. Failures are TypeError / ValueError
// naming the argument.
int read_tensor(PyObject* obj, const std::string& name, PyObject* shape, py::object* shape_out, uintptr_t* ptr,
                bool is_coef = false) {
  Names& nm = names();
  PyObject* dt = PyObject_GetAttr(obj, nm.dtype);
  int code = -1;
  if (dt != nullptr) {
    for (int c = 0; c < kNumCodes; ++c)
      if (dt == nm.dtypes[c]) code = c;
    Py_DECREF(dt);
  } else {
    PyErr_Clear();
  }
  if (code < 0 || (is_coef && code != kF64)) {
    const int is_tensor = PyObject_IsInstance(obj, nm.tensor_type);
    if (is_tensor != 1) {
      PyErr_Clear();
      throw py::type_error(name + " must be a torch.Tensor, got " + std::string(Py_TYPE(obj)->tp_name));
    }
    throw py::type_error(name + " has dtype " + repr_of(obj, nm.dtype) + "; expected " +
                         (is_coef ? "torch.float64" : "torch.float64, torch.float32, torch.bfloat16 or torch.float16"));
  }
  const py::object cpu = checked(PyObject_GetAttr(obj, nm.is_cpu));
  if (cpu.ptr() != Py_True)
    throw py::value_error(name + " is on " + repr_of(obj, nm.device) + "; lincomb_cpu needs CPU tensors");
  py::object sh = checked(PyObject_GetAttr(obj, nm.shape));
  if (!PyTuple_Check(sh.ptr())) throw py::type_error(name + ".shape is not a tuple");
  if (shape != nullptr) {
    const int eq = PyObject_RichCompareBool(sh.ptr(), shape, Py_EQ);
    if (eq < 0) throw py::error_already_set();
    if (eq == 0)
      throw py::value_error(name + " has shape " + shape_repr(sh.ptr()) + "; expected " + shape_repr(shape) +
                            " like input 0");
  }
  if (!is_coef) {
    const py::object cont = checked(PyObject_CallMethodNoArgs(obj, nm.is_contiguous));
    if (cont.ptr() != Py_True)
      throw py::value_error(name + " must be contiguous (strides " +
                            py::str(checked(PyObject_CallMethodNoArgs(obj, nm.stride))).cast<std::string>() +
                            "); use .contiguous()");
  }
  const py::object dp = checked(PyObject_CallMethodNoArgs(obj, nm.data_ptr));
  *ptr = static_cast<uintptr_t>(PyLong_AsUnsignedLongLong(dp.ptr()));
  if (PyErr_Occurred()) throw py::error_already_set();
  if (*ptr % kItemSize[code] != 0)
    throw py::value_error(name + " is not aligned to its element size (" + kCodeName[code] + ")");
  if (shape_out != nullptr) *shape_out = std::move(sh);
  return code;
}

bool overlap(const unsigned char* a, long na, const unsigned char* b, long nb) { return a < b + nb && b < a + na; }

void lincomb_tensors(const py::object& inputs_obj, const py::object& coef_obj, const py::object& outputs_obj,
                     long threads) {
  if (threads < 1) throw py::value_error("lincomb_cpu threads must be >= 1, got " + std::to_string(threads));
  if (!PyList_Check(inputs_obj.ptr()) && !PyTuple_Check(inputs_obj.ptr()))
    throw py::type_error("lincomb_cpu inputs must be a list or tuple of tensors, got " +
                         std::string(Py_TYPE(inputs_obj.ptr())->tp_name));
  if (!PyList_Check(outputs_obj.ptr()) && !PyTuple_Check(outputs_obj.ptr()))
    throw py::type_error("lincomb_cpu outputs must be a list or tuple of tensors, got " +
                         std::string(Py_TYPE(outputs_obj.ptr())->tp_name));
  const py::object inputs = checked(PySequence_Fast(inputs_obj.ptr(), "lincomb_cpu inputs"));
  const py::object outputs = checked(PySequence_Fast(outputs_obj.ptr(), "lincomb_cpu outputs"));
  const long ni = static_cast<long>(PySequence_Fast_GET_SIZE(inputs.ptr()));
  const long no = static_cast<long>(PySequence_Fast_GET_SIZE(outputs.ptr()));
  if (ni < 1 || ni > kMaxIn)
    throw py::value_error("lincomb_cpu takes 1.." + std::to_string(kMaxIn) + " inputs, got " + std::to_string(ni));
  if (no < 1 || no > kMaxOut)
    throw py::value_error("lincomb_cpu writes 1.." + std::to_string(kMaxOut) + " outputs, got " + std::to_string(no));
  PyObject** in_items = PySequence_Fast_ITEMS(inputs.ptr());
  PyObject** out_items = PySequence_Fast_ITEMS(outputs.ptr());
  Plan p;
  p.ni = static_cast<int>(ni);
  p.no = static_cast<int>(no);
  py::object shape;
  uintptr_t ptr = 0;
  for (long i = 0; i < ni; ++i) {
    p.in_code[i] = read_tensor(in_items[i], "lincomb_cpu input " + std::to_string(i), i ? shape.ptr() : nullptr,
                               i ? nullptr : &shape, &ptr);
    p.in[i] = reinterpret_cast<const unsigned char*>(ptr);
    p.f64 = p.f64 || p.in_code[i] == kF64;
  }
  for (long o = 0; o < no; ++o) {
    p.out_code[o] = read_tensor(out_items[o], "lincomb_cpu output " + std::to_string(o), shape.ptr(), nullptr, &ptr);
    p.out[o] = reinterpret_cast<unsigned char*>(ptr);
  }
  long n = 1;
  for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(shape.ptr()); ++d) {
    const long len = PyLong_AsLong(PyTuple_GET_ITEM(shape.ptr(), d));
    if (len < 0) throw py::value_error("lincomb_cpu input 0 has a negative dimension");
    n *= len;
  }
  p.n = n;
  // coef: float64 CPU, (>= no, >= ni), columns contiguous; the row stride may exceed ni (a padded table's slice)
  py::object cshape;
  uintptr_t cptr = 0;
  read_tensor(coef_obj.ptr(), "lincomb_cpu coef", nullptr, &cshape, &cptr, /*is_coef=*/true);
  if (PyTuple_GET_SIZE(cshape.ptr()) != 2 || PyLong_AsLong(PyTuple_GET_ITEM(cshape.ptr(), 0)) < no ||
      PyLong_AsLong(PyTuple_GET_ITEM(cshape.ptr(), 1)) < ni)
    throw py::value_error("lincomb_cpu coef must be at least (" + std::to_string(no) + ", " + std::to_string(ni) +
                          "), got " + shape_repr(cshape.ptr()));
  const py::object cstride = checked(PyObject_CallMethodNoArgs(coef_obj.ptr(), names().stride));
  const long ld = PyLong_AsLong(PyTuple_GET_ITEM(cstride.ptr(), 0));
  if (PyLong_AsLong(PyTuple_GET_ITEM(cstride.ptr(), 1)) != 1 || ld < 0)
    throw py::value_error("lincomb_cpu coef rows must be contiguous (column stride 1), got strides " +
                          py::str(cstride).cast<std::string>());
  if (n == 0) return;
  const int math = p.f64 ? kF64 : kF32;
  for (long i = 0; i < ni; ++i) p.in_copy[i] = p.in_code[i] != math;
  // Aliasing: an output may be an input (same memory, same dtype); any other overlap would let one block's store
  // change an element another block (or thread) has yet to read.
  for (long o = 0; o < no; ++o) {
    const long ob = n * kItemSize[p.out_code[o]];
    for (long q = 0; q < o; ++q)
      if (overlap(p.out[o], ob, p.out[q], n * kItemSize[p.out_code[q]]))
        throw py::value_error("lincomb_cpu output " + std::to_string(o) + " overlaps output " + std::to_string(q));
    for (long i = 0; i < ni; ++i) {
      if (!overlap(p.out[o], ob, p.in[i], n * kItemSize[p.in_code[i]])) continue;
      if (p.out[o] != p.in[i] || p.out_code[o] != p.in_code[i])
        throw py::value_error("lincomb_cpu output " + std::to_string(o) + " partially overlaps input " +
                              std::to_string(i) + ": an output may alias an input only as the same memory and dtype");
      p.in_copy[i] = true;
    }
  }
  const double* coef = reinterpret_cast<const double*>(cptr);
  for (long o = 0; o < no; ++o)
    for (long i = 0; i < ni; ++i) p.coef[o][i] = coef[o * ld + i];
  py::gil_scoped_release nogil;
  execute(p, static_cast<int>(std::min<long>(threads, 1024)));
}

}  // namespace lincomb
}  // namespace fastinterp

void bind_lincomb(py::module_& m) {
  static std::once_flag atfork_once;
  std::call_once(atfork_once, [] { pthread_atfork(nullptr, nullptr, &fastinterp::lincomb::forget_pool_in_child); });
  m.def("lincomb", &fastinterp::lincomb::lincomb_tensors,
        "outputs[o] = sum_i coef[o, i] * inputs[i], elementwise, in place, on CPU torch tensors of mixed float dtypes "
        "(1..8 inputs, 1..4 outputs). Called by fastinterp.kernels.lincomb_cpu, which documents the contract.",
        py::arg("inputs"), py::arg("coef"), py::arg("outputs"), py::arg("threads"));
  m.attr("lincomb_max_inputs") = fastinterp::lincomb::kMaxIn;
  m.attr("lincomb_max_outputs") = fastinterp::lincomb::kMaxOut;
}
