// csrc/pde_common.hpp -- helpers shared by the PDE bindings: numpy argument checks that raise Python
// exceptions naming the argument (never crash on bad input), and a small std::thread worker pool whose
// work split never changes results (every work item is computed by exactly one thread, independently).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fastinterp {
namespace pde {

namespace py = pybind11;

// A run that met non-finite values (an unstable time step): fastinterp._core.DivergedError, a RuntimeError, in Python.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += std::to_string(a.shape(d)) + (a.ndim() == 1 || d + 1 < a.ndim() ? "," : "");
  return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// The shortest decimal that reads back as v (as Python's repr: 0.005, not std::to_string's 0.005000).
inline std::string num_str(double v) {
  char buf[32];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// The object must be a numpy array of exactly dtype T (or std::complex<T> when complex_ is set), C-contiguous,
// with ndim in [min_ndim, max_ndim].
template <class T>
py::array checked_array(const py::object& obj, const char* name, int min_ndim, int max_ndim, bool complex_ = false) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  const py::dtype want = complex_ ? py::dtype::of<std::complex<T>>() : py::dtype::of<T>();
  if (!a.dtype().is(want) && !(a.dtype().kind() == want.kind() && a.dtype().itemsize() == want.itemsize()))
    throw py::type_error(std::string(name) + " must have dtype " + py::str(want).cast<std::string>() + ", got " +
                         dtype_str(a));
  if (a.ndim() < min_ndim || a.ndim() > max_ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(min_ndim) +
                          (min_ndim == max_ndim ? "" : ".." + std::to_string(max_ndim)) + " dimensions, got shape " +
                          shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + " must be aligned");
  return a;
}

inline bool is_pow2(long n) { return n > 0 && (n & (n - 1)) == 0; }

inline void require_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw py::value_error(std::string(name) + " must be finite, got " + std::to_string(v));
}

inline int resolve_threads(long threads) {
  if (threads < 0) throw py::value_error("threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  if (threads == 0) {
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? static_cast<int>(hc) : 1;
  }
  return static_cast<int>(std::min<long>(threads, 1024));
}

// Runs body(worker_id) on `threads` threads (the calling thread is worker 0) and rethrows the first exception.
template <class F>
void parallel_workers(int threads, F&& body) {
  if (threads <= 1) {
    body(0);
    return;
  }
  std::exception_ptr err;
  std::mutex mu;
  auto wrapped = [&](int wid) {
    try {
      body(wid);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!err) err = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int w = 1; w < threads; ++w) pool.emplace_back(wrapped, w);
  wrapped(0);
  for (auto& t : pool) t.join();
  if (err) std::rethrow_exception(err);
}

}  // namespace pde
}  // namespace fastinterp
