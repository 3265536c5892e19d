// fastinterp._core: the compiled part of fastinterp (pybind11, numpy across the boundary, no libtorch).
// It reports how it was built so that `fastinterp info` can tell users which native features they have.
#include <pybind11/pybind11.h>

#include <string>

#include "pde_bind.hpp"
#include "pde_common.hpp"

void bind_allen_cahn(pybind11::module_& m);  // csrc/allen_cahn.cpp
void bind_lincomb(pybind11::module_& m);     // csrc/lincomb.cpp

namespace py = pybind11;

#ifndef FASTINTERP_VERSION
#define FASTINTERP_VERSION "unknown"
#endif

static py::dict build_info() {
  py::dict info;
  info["version"] = FASTINTERP_VERSION;
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  info["compiler"] = std::string("msvc ") + std::to_string(_MSC_VER);
#else
  info["compiler"] = "unknown";
#endif
  info["cplusplus"] = static_cast<long>(__cplusplus);
#if defined(_OPENMP)
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
#if defined(FASTINTERP_HAVE_FFTW)
  info["fftw"] = true;
#else
  info["fftw"] = false;
#endif
  return info;
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastinterp native core";
  m.def("build_info", &build_info, "How the native core was built: version, compiler, C++ standard, OpenMP.");
  py::register_exception<fastinterp::pde::Diverged>(m, "DivergedError", PyExc_RuntimeError);
  bind_fft(m);
  bind_fields(m);
  bind_navier_stokes(m);
  bind_allen_cahn(m);
  bind_lincomb(m);
}
