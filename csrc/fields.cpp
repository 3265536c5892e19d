// fastinterp._core Gaussian random fields on the periodic unit box [0, 1]^d (d = 1, 2), and raw access to the
// counter-based normals of csrc/rng.hpp.
//
// Law: N(0, sigma^2 (-Lap + tau^2)^(-s)) with the mean mode removed: spectrum S(k) = sigma^2 (|k|^2 + tau^2)^(-s),
// k = 2 pi n, S(0) = 0, defined as in fastinterp/targets/random_field.py:
//     field = irfftn( sqrt(S) * rfftn(xi, norm="ortho"), norm="ortho" ),  xi ~ N(0, I) on the grid.
// Instead of transforming white noise we draw its orthonormal Fourier coefficients directly, which have the same
// law: on the half-spectrum, modes that are their own conjugate (n_i in {0, N/2} on every axis) are real N(0, 1);
// the others are complex with independent N(0, 1/2) real and imaginary parts, and in the self-conjugate column(s)
// of the halved axis the modes n and -n are conjugate pairs (only one is drawn). Then one unnormalised c2r gives
// the field: coefficient = sqrt(S / N^d) * z for "ortho", sqrt(S) * z for "paper" (the Lipschitz paper's script,
// Re ifft(sqrt(S) (xi_r + i xi_i), norm="forward"): the same Gaussian law times N^(d/2)).
// Normals: stream tag 1, trajectory = field index, step 0; mode (a, b) of the half grid uses normal pair a*M + b
// (M = N/2 + 1), so field i is the same whatever num, first or threads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "fft.hpp"
#include "pde_bind.hpp"
#include "pde_common.hpp"
#include "rng.hpp"
#include "spectral.hpp"

namespace py = pybind11;
using namespace fastinterp;

namespace {

constexpr uint32_t kTagField = 1;

struct FieldSpec {
  long n = 0;
  int dim = 2;
  std::vector<double> amp;  // per half-grid mode: sqrt(S) * normalisation, 0 at the mean mode
};

FieldSpec make_spec(long n, int dim, double s, double tau, double sigma2, bool paper) {
  FieldSpec sp;
  sp.n = n;
  sp.dim = dim;
  const long m = n / 2 + 1, rows = dim == 2 ? n : 1;
  const double norm = paper ? 1.0 : 1.0 / std::sqrt(std::pow(static_cast<double>(n), dim));
  sp.amp.assign(rows * m, 0.0);
  for (long a = 0; a < rows; ++a)
    for (long b = 0; b < m; ++b) {
      const double na = dim == 2 ? static_cast<double>(a <= n / 2 ? a : a - n) : 0.0;
      const double k2 = 4.0 * fft::kPi * fft::kPi * (na * na + static_cast<double>(b * b));
      if (a == 0 && b == 0) continue;
      sp.amp[a * m + b] = norm * std::sqrt(sigma2 * std::pow(k2 + tau * tau, -s));
    }
  return sp;
}

template <class T>
void draw_spectrum(const FieldSpec& sp, uint64_t seed, uint64_t traj, T* re, T* im, double* z0, double* z1) {
  spectral::draw_hermitian<T>(rng::Stream{seed, kTagField, traj, 0}, sp.amp.data(), sp.n, sp.dim, re, im, z0, z1);
}

template <class T>
py::array grf_sample_impl(const FieldSpec& sp, long num, uint64_t seed, uint64_t first, int threads) {
  const long n = sp.n, m = n / 2 + 1;
  std::vector<py::ssize_t> shape{num, n};
  if (sp.dim == 2) shape.push_back(n);
  py::array_t<T> out(shape);
  T* po = out.mutable_data();
  const long per = sp.dim == 2 ? n * n : n;
  {
    py::gil_scoped_release nogil;
    std::atomic<long> next{0};
    const long chunk = sp.dim == 2 ? 1 : 64;  // 1-D fields are transformed 64 at a time (vector lanes)
    pde::parallel_workers(std::min<long>(threads, std::max<long>(1, (num + chunk - 1) / chunk)), [&](int) {
      if (sp.dim == 2) {
        fft::RealFFT2D<T> plan(n, n);
        std::vector<T> re(n * m), im(n * m);
        const long zs = std::is_same<T, double>::value ? 0 : n * m;  // draw_hermitian's scratch (float only)
        std::vector<double> z0(zs), z1(zs);
        for (long i; (i = next.fetch_add(1)) < num;) {
          draw_spectrum<T>(sp, seed, first + static_cast<uint64_t>(i), re.data(), im.data(), z0.data(), z1.data());
          plan.inverse_destroy(re.data(), im.data(), po + i * per);
        }
      } else {
        fft::RealFFT1D<T> plan(n);
        std::vector<T> re(chunk * m), im(chunk * m);
        std::vector<double> z0(m), z1(m);
        for (long c; (c = next.fetch_add(1)) * chunk < num;) {
          const long i0 = c * chunk, nb = std::min(chunk, num - i0);
          for (long b = 0; b < nb; ++b)
            draw_spectrum<T>(sp, seed, first + static_cast<uint64_t>(i0 + b), re.data() + b * m, im.data() + b * m,
                            z0.data(), z1.data());
          plan.inverse(re.data(), im.data(), m, po + i0 * per, per, nb);
        }
      }
    });
  }
  return out;
}

}  // namespace

void bind_fields(py::module_& m) {
  m.def(
      "grf_sample",
      [](long n, int dim, double s, double tau, double sigma2, long num, uint64_t seed, uint64_t first, bool paper,
         const std::string& dtype, long threads) -> py::array {
        if (n < 4 || !pde::is_pow2(n) || n > 8192)
          throw py::value_error("n must be a power of two in [4, 8192], got " + std::to_string(n));
        if (dim != 1 && dim != 2) throw py::value_error("dim must be 1 or 2, got " + std::to_string(dim));
        pde::require_finite(s, "s");
        pde::require_finite(tau, "tau");
        pde::require_finite(sigma2, "sigma2");
        if (s < 0) throw py::value_error("s must be >= 0, got " + std::to_string(s));
        if (tau < 0) throw py::value_error("tau must be >= 0, got " + std::to_string(tau));
        if (sigma2 <= 0) throw py::value_error("sigma2 must be > 0, got " + std::to_string(sigma2));
        if (num < 0) throw py::value_error("num must be >= 0, got " + std::to_string(num));
        if (first + static_cast<uint64_t>(num) > (1ULL << 32))
          throw py::value_error("first + num must be <= 2^32 (trajectory index range)");
        const int th = pde::resolve_threads(threads);
        const FieldSpec sp = make_spec(n, dim, s, tau, sigma2, paper);
        if (dtype == "float64") return grf_sample_impl<double>(sp, num, seed, first, th);
        if (dtype == "float32") return grf_sample_impl<float>(sp, num, seed, first, th);
        throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
      },
      py::arg("n"), py::arg("dim"), py::arg("s"), py::arg("tau"), py::arg("sigma2"), py::arg("num"), py::kw_only(),
      py::arg("seed"), py::arg("first") = 0, py::arg("paper") = false, py::arg("dtype") = "float64",
      py::arg("threads") = 1,
      "Gaussian random fields N(0, sigma2 (-Lap + tau^2)^(-s)) on [0,1]^dim, mean mode removed; shape (num, n[, n]). "
      "Field i is a function of (seed, first + i) only.");
  m.def(
      "normals",
      [](uint64_t seed, uint32_t tag, uint64_t traj, uint64_t step, uint64_t first, long count) {
        if (count < 0) throw py::value_error("count must be >= 0, got " + std::to_string(count));
        if (tag >= (1u << 16)) throw py::value_error("tag must be < 2^16");
        if (traj >= (1ULL << 32) || step >= (1ULL << 32)) throw py::value_error("traj and step must be < 2^32");
        py::array_t<double> out(count);
        double* p = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          rng::Stream{seed, tag, traj, step}.fill(first, count, p);
        }
        return out;
      },
      py::arg("seed"), py::arg("tag"), py::arg("traj"), py::arg("step"), py::arg("first"), py::arg("count"),
      "Standard normals number first .. first+count-1 of the counter-based stream (seed, tag, traj, step).");
  m.def(
      "rng_kernel", []() { return std::string(rng::avx2_flag() ? "avx2" : "portable"); },
      "Which loops draw normals in bulk: 'avx2' (CPUs with AVX2 but not AVX-512) or 'portable' (compiled for "
      "AVX-512, AVX2 and baseline x86-64, picked at load time). Both give the same bits.");
  m.def(
      "set_rng_kernel",
      [](const std::string& name) {
        if (name == "portable")
          rng::avx2_flag() = false;
        else if (name == "avx2") {
          if (!rng::avx2_available()) throw py::value_error("rng kernel 'avx2' needs a CPU with AVX2");
          rng::avx2_flag() = true;
        } else
          throw py::value_error("rng kernel must be 'avx2' or 'portable', got '" + name + "'");
      },
      py::arg("name"), "Select the bulk normal kernels (process-wide; for tests and benchmarks).");
}
