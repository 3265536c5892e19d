// csrc/pde_bind.hpp -- binders of the FFT, Gaussian-field and Navier-Stokes parts of fastinterp._core.
#pragma once

#include <pybind11/pybind11.h>

void bind_fft(pybind11::module_& m);            // csrc/fft_bind.cpp
void bind_fields(pybind11::module_& m);         // csrc/fields.cpp
void bind_navier_stokes(pybind11::module_& m);  // csrc/navier_stokes.cpp
