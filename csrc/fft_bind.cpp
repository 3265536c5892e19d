// fastinterp._core FFT bindings: numpy-compatible real FFTs (rfft/irfft over the last axis, rfft2/irfft2 over
// the last two), batched over leading axes, with numpy's norm= conventions. They exist to test and benchmark
// csrc/fft.hpp against numpy.fft; the solvers call the C++ plans directly.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "fft.hpp"
#include "pde_bind.hpp"
#include "pde_common.hpp"

namespace py = pybind11;
using namespace fastinterp;
using fastinterp::pde::checked_array;

namespace {

// forward and inverse scale factors for numpy's norm names
std::pair<double, double> norm_scales(const std::string& norm, double N) {
  if (norm == "backward") return {1.0, 1.0 / N};
  if (norm == "ortho") return {1.0 / std::sqrt(N), 1.0 / std::sqrt(N)};
  if (norm == "forward") return {1.0 / N, 1.0};
  throw py::value_error("norm must be 'backward', 'ortho' or 'forward', got '" + norm + "'");
}

long check_len(long n, const char* what) {
  if (n < 4 || !pde::is_pow2(n))
    throw py::value_error(std::string(what) + " must be a power of two >= 4, got " + std::to_string(n));
  return n;
}

template <class T>
py::array rfftn_impl(const py::array& x, int rank, const std::string& norm) {
  const int nd = static_cast<int>(x.ndim());
  const long n1 = check_len(x.shape(nd - 1), "x.shape[-1]");
  const long n0 = rank == 2 ? check_len(x.shape(nd - 2), "x.shape[-2]") : 1;
  const long m = n1 / 2 + 1;
  long batch = 1;
  for (int d = 0; d < nd - rank; ++d) batch *= x.shape(d);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + nd);
  shape[nd - 1] = m;
  py::array_t<std::complex<T>> out(shape);
  const T* px = static_cast<const T*>(x.data());
  std::complex<T>* po = out.mutable_data();
  const double scale = norm_scales(norm, static_cast<double>(n0 * n1)).first;
  {
    py::gil_scoped_release nogil;
    std::vector<T> re(n0 * m), im(n0 * m);
    if (rank == 1) {
      fft::RealFFT1D<T> plan(n1);
      // transform in chunks of rows so the split scratch stays small
      const long rows = 256;
      re.resize(rows * m);
      im.resize(rows * m);
      for (long b0 = 0; b0 < batch; b0 += rows) {
        const long nb = std::min(rows, batch - b0);
        plan.forward(px + b0 * n1, n1, re.data(), im.data(), m, nb);
        for (long i = 0; i < nb * m; ++i)
          po[b0 * m + i] = std::complex<T>(static_cast<T>(re[i] * scale), static_cast<T>(im[i] * scale));
      }
    } else {
      fft::RealFFT2D<T> plan(n0, n1);
      for (long b = 0; b < batch; ++b) {
        plan.forward(px + b * n0 * n1, re.data(), im.data());
        std::complex<T>* ob = po + b * n0 * m;
        for (long i = 0; i < n0 * m; ++i)
          ob[i] = std::complex<T>(static_cast<T>(re[i] * scale), static_cast<T>(im[i] * scale));
      }
    }
  }
  return out;
}

template <class T>
py::array irfftn_impl(const py::array& X, int rank, const std::string& norm) {
  const int nd = static_cast<int>(X.ndim());
  const long m = X.shape(nd - 1);
  const long n1 = 2 * (m - 1);
  check_len(n1, "2 * (X.shape[-1] - 1)");
  const long n0 = rank == 2 ? check_len(X.shape(nd - 2), "X.shape[-2]") : 1;
  long batch = 1;
  for (int d = 0; d < nd - rank; ++d) batch *= X.shape(d);
  std::vector<py::ssize_t> shape(X.shape(), X.shape() + nd);
  shape[nd - 1] = n1;
  py::array_t<T> out(shape);
  const std::complex<T>* pX = static_cast<const std::complex<T>*>(X.data());
  T* po = out.mutable_data();
  const T scale = static_cast<T>(norm_scales(norm, static_cast<double>(n0 * n1)).second);
  {
    py::gil_scoped_release nogil;
    if (rank == 1) {
      fft::RealFFT1D<T> plan(n1);
      const long rows = 256;
      std::vector<T> re(rows * m), im(rows * m);
      for (long b0 = 0; b0 < batch; b0 += rows) {
        const long nb = std::min(rows, batch - b0);
        for (long i = 0; i < nb * m; ++i) {
          re[i] = pX[b0 * m + i].real() * scale;
          im[i] = pX[b0 * m + i].imag() * scale;
        }
        plan.inverse(re.data(), im.data(), m, po + b0 * n1, n1, nb);
      }
    } else {
      fft::RealFFT2D<T> plan(n0, n1);
      std::vector<T> re(n0 * m), im(n0 * m);
      for (long b = 0; b < batch; ++b) {
        const std::complex<T>* xb = pX + b * n0 * m;
        for (long i = 0; i < n0 * m; ++i) {
          re[i] = xb[i].real() * scale;
          im[i] = xb[i].imag() * scale;
        }
        plan.inverse_destroy(re.data(), im.data(), po + b * n0 * n1);
      }
    }
  }
  return out;
}

py::array rfft_dispatch(const py::object& x, int rank, const std::string& norm) {
  if (py::isinstance<py::array>(x)) {
    py::array a = py::reinterpret_borrow<py::array>(x);
    if (a.dtype().kind() == 'f' && a.dtype().itemsize() == 4)
      return rfftn_impl<float>(checked_array<float>(x, "x", rank, 32), rank, norm);
  }
  return rfftn_impl<double>(checked_array<double>(x, "x", rank, 32), rank, norm);
}

py::array irfft_dispatch(const py::object& X, int rank, const std::string& norm) {
  if (py::isinstance<py::array>(X)) {
    py::array a = py::reinterpret_borrow<py::array>(X);
    if (a.dtype().kind() == 'c' && a.dtype().itemsize() == 8)
      return irfftn_impl<float>(checked_array<float>(X, "X", rank, 32, true), rank, norm);
  }
  return irfftn_impl<double>(checked_array<double>(X, "X", rank, 32, true), rank, norm);
}

template <class T>
double bench_pair(long n0, long n1, long repeats, fft::Backend backend, bool raw) {
  fft::RealFFT2D<T> plan(n0, n1, backend);
  const long m = n1 / 2 + 1;
  std::vector<T> x(n0 * n1), y(n0 * n1), re(n0 * m), im(n0 * m);
  for (long i = 0; i < n0 * n1; ++i) x[i] = static_cast<T>(std::sin(0.37 * static_cast<double>(i)));
  for (int w = 0; w < 3; ++w) {
    plan.forward(x.data(), re.data(), im.data());
    plan.inverse_destroy(re.data(), im.data(), y.data());
  }
#ifdef FASTINTERP_HAVE_FFTW
  if (raw && plan.fftw_pair()) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long r = 0; r < repeats; ++r) plan.fftw_pair()->raw_pair();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(t1 - t0).count() / static_cast<double>(repeats);
  }
#endif
  (void)raw;
  const auto t0 = std::chrono::steady_clock::now();
  for (long r = 0; r < repeats; ++r) {
    plan.forward(x.data(), re.data(), im.data());
    plan.inverse_destroy(re.data(), im.data(), y.data());
  }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(t1 - t0).count() / static_cast<double>(repeats);
}

}  // namespace

void bind_fft(py::module_& m) {
  m.def(
      "fft_rfft", [](const py::object& x, const std::string& norm) { return rfft_dispatch(x, 1, norm); }, py::arg("x"),
      py::kw_only(), py::arg("norm") = "backward",
      "numpy.fft.rfft over the last axis (float32 -> complex64, float64 -> complex128; C-contiguous; "
      "length a power of two >= 4).");
  m.def(
      "fft_irfft", [](const py::object& X, const std::string& norm) { return irfft_dispatch(X, 1, norm); },
      py::arg("X"), py::kw_only(), py::arg("norm") = "backward",
      "numpy.fft.irfft over the last axis with n = 2 (X.shape[-1] - 1).");
  m.def(
      "fft_rfft2", [](const py::object& x, const std::string& norm) { return rfft_dispatch(x, 2, norm); },
      py::arg("x"), py::kw_only(), py::arg("norm") = "backward", "numpy.fft.rfft2 over the last two axes.");
  m.def(
      "fft_irfft2", [](const py::object& X, const std::string& norm) { return irfft_dispatch(X, 2, norm); },
      py::arg("X"), py::kw_only(), py::arg("norm") = "backward",
      "numpy.fft.irfft2 over the last two axes with s = (X.shape[-2], 2 (X.shape[-1] - 1)).");
  m.def(
      "fft_backend", []() { return std::string(fft::backend_name(fft::default_backend())); },
      "The FFT backend new plans use: 'builtin' (ours) or 'fftw' (FFTW3, only when compiled in).");
  m.def(
      "fft_backends",
      []() {
        std::vector<std::string> v{"builtin"};
        if (fft::fftw_available()) v.push_back("fftw");
        return v;
      },
      "FFT backends compiled into this build.");
  m.def(
      "set_fft_backend",
      [](const std::string& name) {
        if (name == "builtin")
          fft::set_default_backend(fft::Backend::builtin);
        else if (name == "fftw") {
          if (!fft::fftw_available())
            throw py::value_error("fft backend 'fftw' is not compiled in (available: builtin)");
          fft::set_default_backend(fft::Backend::fftw);
        } else
          throw py::value_error("backend must be 'builtin' or 'fftw', got '" + name + "'");
      },
      py::arg("name"), "Select the FFT backend of plans created from now on (process-wide).");
  m.def(
      "fft_bench_pair",
      [](long n0, long n1, long repeats, const std::string& backend, const std::string& dtype) {
        check_len(n0, "n0");
        check_len(n1, "n1");
        if (repeats < 1) throw py::value_error("repeats must be >= 1, got " + std::to_string(repeats));
        fft::Backend b = fft::Backend::builtin;
        if (backend == "fftw") {
          if (!fft::fftw_available()) throw py::value_error("fft backend 'fftw' is not compiled in");
          b = fft::Backend::fftw;
        } else if (backend == "fftw_raw") {
          if (!fft::fftw_available()) throw py::value_error("fft backend 'fftw' is not compiled in");
          b = fft::Backend::fftw;
        } else if (backend != "builtin")
          throw py::value_error("backend must be 'builtin' or 'fftw', got '" + backend + "'");
        py::gil_scoped_release nogil;
        const bool raw = backend == "fftw_raw";
        if (dtype == "float32") return bench_pair<float>(n0, n1, repeats, b, raw);
        if (dtype != "float64") throw std::invalid_argument("dtype must be 'float32' or 'float64'");
        return bench_pair<double>(n0, n1, repeats, b, raw);
      },
      py::arg("n0"), py::arg("n1"), py::arg("repeats"), py::kw_only(), py::arg("backend") = "builtin",
      py::arg("dtype") = "float64",
      "Seconds per (2-D r2c + c2r) pair of an n0 x n1 transform, timed inside C++ (after a warm-up). "
      "backend 'fftw_raw' times FFTW on its own interleaved buffers, without the copies to split planes.");
}
