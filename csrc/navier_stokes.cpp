// fastinterp._core stochastic 2-D Navier-Stokes in vorticity form on [0, 2 pi]^2 (periodic, pseudo-spectral):
//
//   dw + (u . grad w) dt = (nu Lap w - alpha w) dt + eps sum_j e_j(x) dW_j,   u = (psi_y, -psi_x),  -Lap psi = w
//
// (u = grad^perp psi with the sign that makes w = v_x - u_y the vorticity of u). Arrays are w[i, j] = w(x_i, y_j),
// x_i = 2 pi i / n on axis 0, y on axis 1 (the halved axis of the spectrum). The state is the UNNORMALISED half
// spectrum w_hat = numpy.fft.rfft2(w), so numpy.fft.irfft2(state) is the vorticity. Advection is dealiased with the
// 2/3 rule: velocities and gradients are built from the modes with |k_x|, |k_y| <= kmax = (n - 1) / 3 (integer
// division) and the product is projected back onto them (Galerkin truncation, which conserves enstrophy exactly).
// The advection is evaluated in Basdevant's (1983) form, exact for divergence-free u in 2-D:
//   u . grad w = d_x d_y (v^2 - u^2) + (d_x^2 - d_y^2)(u v),
// four real transforms a step (u, v back; v^2 - u^2, u v forward) instead of five (u, v, w_x, w_y back; the product
// forward). Products of fields band-limited to kmax alias only onto modes beyond kmax, so after the projection the
// result equals the projected u . grad w up to rounding (the torch twin uses the direct form: the tests compare them).
// Forcing modes e_j: sin 6x, cos 7x, sin 5(x+y), cos 8(x+y) (modes = 4) plus cos 6x, sin 7x, cos 5(x+y),
// sin 8(x+y) (modes = 8), unnormalised, so the enstrophy input rate is eps^2 * modes / 2.
//
// Schemes, with L_k = -(nu |k|^2 + alpha), N = -P(u . grad w), xi = eps sum_j e_j dW_j (ONE increment per step):
//   em_imex : w' = (w + dt N(w) + xi) / (1 - dt L)                         (the paper's semi-implicit Euler-Maruyama)
//   if_heun : w* = E (w + dt N(w) + xi),  w' = E (w + dt/2 N(w) + xi) + dt/2 N(w*),   E = exp(L dt)
// (Heun on the integrating-factor variable e^{-Lt} w; the same xi in both stages, as additive noise requires.)
// Noise: normal j of step s of trajectory t is normal number j of rng::Stream{seed, tag 2, t, s}; the initial field
// uses tag 3. One trajectory per thread; results do not depend on the thread count.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fft.hpp"
#include "pde_bind.hpp"
#include "pde_common.hpp"
#include "rng.hpp"
#include "spectral.hpp"

namespace py = pybind11;
using namespace fastinterp;

namespace {

constexpr uint32_t kTagNoise = 2;
constexpr uint32_t kTagInit = 3;

enum class Scheme { em_imex, if_heun };

// The parameters of a run, passed as one struct (bound as fastinterp._core.NSConfig). Their defaults, ranges and
// documentation live in fastinterp/pde/spec.py, which checks user input; validate() only guards the invariants the
// solver relies on (for direct _core calls), with short messages, and says nothing about stability: the advice on
// a diverged run is Python's (fastinterp/pde/navier_stokes.py).
struct NSConfig {
  long n = 0;  // no defaults here: they are the spec's
  double nu = 0, alpha = 0, eps = 0, dt = 0;
  int modes = 0;
  Scheme scheme = Scheme::if_heun;
  bool advection = true;

  void validate() const {
    // n >= 32 keeps the forcing's wavenumber 8 inside the dealiased band (kmax = (n - 1) / 3 >= 10)
    if (n < 32 || n > 2048 || !pde::is_pow2(n))
      throw std::invalid_argument("NSConfig: n must be a power of two in [32, 2048], got " + std::to_string(n));
    const std::pair<const char*, double> nonneg[] = {{"nu", nu}, {"alpha", alpha}, {"eps", eps}};
    for (const auto& [name, v] : nonneg)
      if (!(std::isfinite(v) && v >= 0))
        throw std::invalid_argument(std::string("NSConfig: ") + name + " must be finite and >= 0, got " +
                                    std::to_string(v));
    if (!(std::isfinite(dt) && dt > 0))
      throw std::invalid_argument("NSConfig: dt must be finite and > 0, got " + std::to_string(dt));
    if (modes != 4 && modes != 8)
      throw std::invalid_argument("NSConfig: modes must be 4 or 8, got " + std::to_string(modes));
  }
  const char* scheme_name() const { return scheme == Scheme::em_imex ? "em_imex" : "if_heun"; }
};

Scheme parse_scheme(const std::string& name) {
  if (name == "em_imex") return Scheme::em_imex;
  if (name == "if_heun") return Scheme::if_heun;
  throw std::invalid_argument("NSConfig: scheme must be 'em_imex' or 'if_heun', got '" + name + "'");
}

struct ForcingEntry {
  long index;
  double re, im;
};

// Forcing mode j as cos or sin of (px x + py y): j = 0..7 are sin 6x, cos 7x, sin 5(x+y), cos 8(x+y), cos 6x, sin 7x,
// cos 5(x+y), sin 8(x+y).
struct ForcingMode {
  int px, py;
  bool sine;
};
constexpr ForcingMode kForcing[8] = {{6, 0, true},  {7, 0, false}, {5, 5, true},  {8, 8, false},
                                     {6, 0, false}, {7, 0, true},  {5, 5, false}, {8, 8, true}};

// Tables shared (read-only) by all threads.
struct NSTables {
  NSConfig cfg;
  long n = 0, m = 0, kmax = 0;
  std::vector<double> kx, ky;  // per row a / column b (integer wavenumbers)
  std::vector<double> lin;     // em_imex: 1 / (1 + dt (nu k^2 + alpha)); if_heun: exp(-(nu k^2 + alpha) dt)
  std::vector<double> inv_k2;  // 1/|k|^2 (0 at k = 0), zero outside the dealiasing mask
  std::vector<unsigned char> keep;
  std::vector<std::vector<ForcingEntry>> forcing;

  explicit NSTables(const NSConfig& c) : cfg(c), n(c.n), m(c.n / 2 + 1), kmax((c.n - 1) / 3) {
    kx.resize(n);
    ky.resize(m);
    for (long a = 0; a < n; ++a) kx[a] = static_cast<double>(a <= n / 2 ? a : a - n);
    for (long b = 0; b < m; ++b) ky[b] = static_cast<double>(b);
    lin.resize(n * m);
    inv_k2.resize(n * m);
    keep.resize(n * m);
    for (long a = 0; a < n; ++a)
      for (long b = 0; b < m; ++b) {
        const long i = a * m + b;
        const double k2 = kx[a] * kx[a] + ky[b] * ky[b];
        const double rate = c.nu * k2 + c.alpha;
        lin[i] = c.scheme == Scheme::em_imex ? 1.0 / (1.0 + c.dt * rate) : std::exp(-rate * c.dt);
        keep[i] = std::fabs(kx[a]) <= kmax && ky[b] <= kmax;
        inv_k2[i] = (keep[i] && k2 > 0) ? 1.0 / k2 : 0.0;
      }
    // Unnormalised DFT of each forcing mode, exactly, kept sparse: cos(p.x) has n^2/2 at k = p and k = -p, sin(p.x)
    // has -i n^2/2 at p and +i n^2/2 at -p; the half spectrum stores k = -p too only when p_y = 0 (column 0). Computing
    // these once per call by FFT cost ~2.5 ms, a quarter of a 50-step call at 128^2.
    const double h = 0.5 * static_cast<double>(n * n);
    forcing.resize(c.modes);
    for (int j = 0; j < c.modes; ++j) {
      const ForcingMode& f = kForcing[j];
      forcing[j].push_back({f.px * m + f.py, f.sine ? 0.0 : h, f.sine ? -h : 0.0});
      if (f.py == 0) forcing[j].push_back({(n - f.px) * m, f.sine ? 0.0 : h, f.sine ? h : 0.0});
    }
  }
};

// Per-thread solver state.
template <class T>
class NSWorker {
 public:
  explicit NSWorker(const NSTables& tb)
      : tb_(tb), plan_(tb.n, tb.n), n_(tb.n), m_(tb.n / 2 + 1), hs_(n_ * m_), ps_(n_ * n_) {
    for (auto* v : {&ur_, &ui_, &vr_, &vi_, &xr_, &xi_, &n1r_, &n1i_, &n2r_, &n2i_, &sr_, &si_})
      v->assign(hs_, T(0));
    for (auto* v : {&u_, &v_}) v->assign(ps_, T(0));
    const double s = 1.0 / static_cast<double>(n_ * n_);  // folds irfft2's 1/n^2 into the multipliers
    kx_.resize(n_);
    ky_.resize(m_);
    kxr_.resize(n_);
    kyr_.resize(m_);
    for (long a = 0; a < n_; ++a) kx_[a] = static_cast<T>(tb.kx[a] * s), kxr_[a] = static_cast<T>(tb.kx[a]);
    for (long b = 0; b < m_; ++b) ky_[b] = static_cast<T>(tb.ky[b] * s), kyr_[b] = static_cast<T>(tb.ky[b]);
    ik2_.resize(hs_);
    lin_.resize(hs_);
    for (long i = 0; i < hs_; ++i) {
      ik2_[i] = static_cast<T>(tb.inv_k2[i]);
      lin_[i] = static_cast<T>(tb.lin[i]);
    }
  }

  // N = -P(u . grad w), unnormalised spectrum, from the state (wr, wi), in Basdevant's form (see the file header):
  // two inverse transforms (u, v) and two forward ones (v^2 - u^2, u v) instead of four and one.
  void nonlinear(const T* wr, const T* wi, T* Nr, T* Ni) {
    // Dealiasing leaves only columns b <= kmax nonzero in the velocity spectra, and only those columns of the
    // products' spectra survive the projection: the column transforms of the other ~1/3 of the columns are skipped.
    // Rounded up to a multiple of 8 lanes (zero columns, so no change in the result) to keep the butterfly loops free
    // of scalar remainders.
    const long cols = std::min(m_, (tb_.kmax + 1 + 7) / 8 * 8);
    velocity_kernel(n_, m_, tb_.kmax, kx_.data(), ky_.data(), ik2_.data(), wr, wi, ur_.data(), ui_.data(), vr_.data(),
                    vi_.data());
    plan_.inverse_destroy(ur_.data(), ui_.data(), u_.data(), cols);
    plan_.inverse_destroy(vr_.data(), vi_.data(), v_.data(), cols);
    products();
    plan_.forward(u_.data(), Nr, Ni, cols);
    plan_.forward(v_.data(), xr_.data(), xi_.data(), cols);
    combine_kernel(n_, m_, tb_.kmax, kxr_.data(), kyr_.data(), xr_.data(), xi_.data(), Nr, Ni);
  }

  // One step in place; dW: the `modes` Brownian increments of this step.
  void step(T* wr, T* wi, const double* dW) {
    const NSConfig& c = tb_.cfg;
    const T dt = static_cast<T>(c.dt);
    const bool adv = c.advection;
    if (adv) nonlinear(wr, wi, n1r_.data(), n1i_.data());
    if (c.scheme == Scheme::em_imex) {
      if (adv) axpy(wr, wi, n1r_.data(), n1i_.data(), dt);
      add_noise(wr, wi, dW);
      scale(wr, wi, lin_.data());
      return;
    }
    // if_heun: s = w + dt/2 N1 + xi ; w* = E (s + dt/2 N1) ; w' = E s + dt/2 N2(w*)
    std::copy(wr, wr + hs_, sr_.begin());
    std::copy(wi, wi + hs_, si_.begin());
    if (adv) axpy(sr_.data(), si_.data(), n1r_.data(), n1i_.data(), dt / 2);
    add_noise(sr_.data(), si_.data(), dW);
    if (!adv) {
      std::copy(sr_.begin(), sr_.end(), wr);
      std::copy(si_.begin(), si_.end(), wi);
      scale(wr, wi, lin_.data());
      return;
    }
    heun_predict(wr, wi);  // w <- E (s + dt/2 N1) = w*
    nonlinear(wr, wi, n2r_.data(), n2i_.data());
    heun_correct(wr, wi, dt / 2);  // w <- E s + dt/2 N2
  }

  // Physical vorticity (n x n) of a state.
  void physical(const T* wr, const T* wi, T* out) {
    std::copy(wr, wr + hs_, sr_.begin());
    std::copy(wi, wi + hs_, si_.begin());
    plan_.inverse_destroy(sr_.data(), si_.data(), out);
    const T s = static_cast<T>(1.0 / static_cast<double>(n_ * n_));
    for (long i = 0; i < ps_; ++i) out[i] *= s;
  }

 private:
  // Static functions with restrict-qualified parameters: written as member loops over the member vectors, GCC 12
  // left them scalar (too many data references to prove independent).
  // The dealiasing mask keeps the rows a <= kmax and a >= n - kmax (|kx| <= kmax) and the columns b <= kmax: about
  // half of the half spectrum at every n. The kernels below work on that rectangle only.
  //
  // (u, v) = (i ky psi, -i kx psi), psi = w / |k|^2 on the kept modes, with irfft2's 1/n^2 folded into kx, ky.
  // Outside the mask: the columns b > kmax are never written and stay zero from construction (inverse_destroy's
  // column transforms of zero columns give zeros, and its row pass only reads); the rows |kx| > kmax of the columns
  // b <= kmax, which the in-place column transforms overwrite, are zeroed here.
  FASTINTERP_SIMD_CLONES static void velocity_kernel(long n, long m, long kmax, const T* __restrict kxv,
                                                     const T* __restrict kyv, const T* __restrict ik2,
                                                     const T* __restrict wr, const T* __restrict wi, T* __restrict ur,
                                                     T* __restrict ui, T* __restrict vr, T* __restrict vi) {
    for (long a = 0; a < n; ++a) {
      if (a > kmax && a < n - kmax) {
        for (long b = 0; b <= kmax; ++b) ur[a * m + b] = ui[a * m + b] = vr[a * m + b] = vi[a * m + b] = T(0);
        continue;
      }
      const T kx = kxv[a];
      for (long b = 0; b <= kmax; ++b) {
        const long i = a * m + b;
        const T ky = kyv[b];
        const T pr = wr[i] * ik2[i], pi = wi[i] * ik2[i];  // psi
        ur[i] = -ky * pi;  // u = i ky psi
        ui[i] = ky * pr;
        vr[i] = kx * pi;  // v = -i kx psi
        vi[i] = -kx * pr;
      }
    }
  }
  // N = -P(A), A^ = -kx ky P^ + (ky^2 - kx^2) Q^ with P = v^2 - u^2 (in N on entry), Q = u v; integer kx, ky.
  // Zeros outside the mask: the columns forward() skipped hold partial transforms.
  FASTINTERP_SIMD_CLONES static void combine_kernel(long n, long m, long kmax, const T* __restrict kxv,
                                                    const T* __restrict kyv, const T* __restrict qr,
                                                    const T* __restrict qi, T* __restrict Nr, T* __restrict Ni) {
    for (long a = 0; a < n; ++a) {
      T* __restrict nr = Nr + a * m;
      T* __restrict ni = Ni + a * m;
      long b = 0;
      if (a <= kmax || a >= n - kmax) {
        const T kx = kxv[a];
        const T* __restrict pr = qr + a * m;
        const T* __restrict pi = qi + a * m;
        for (; b <= kmax; ++b) {
          const T ky = kyv[b];
          const T c1 = kx * ky, c2 = kx * kx - ky * ky;
          nr[b] = c1 * nr[b] + c2 * pr[b];
          ni[b] = c1 * ni[b] + c2 * pi[b];
        }
      }
      for (; b < m; ++b) nr[b] = ni[b] = T(0);
    }
  }
  // u <- v^2 - u^2, v <- u v (physical space).
  FASTINTERP_SIMD_CLONES void products() {
    T* __restrict u = u_.data();
    T* __restrict v = v_.data();
    for (long i = 0; i < ps_; ++i) {
      const T a = u[i], b = v[i];
      u[i] = (b - a) * (b + a);
      v[i] = a * b;
    }
  }
  FASTINTERP_SIMD_CLONES void axpy(T* __restrict yr, T* __restrict yi, const T* __restrict xr,
                                   const T* __restrict xi, T a) {
    for (long i = 0; i < hs_; ++i) {
      yr[i] += a * xr[i];
      yi[i] += a * xi[i];
    }
  }
  FASTINTERP_SIMD_CLONES void scale(T* __restrict yr, T* __restrict yi, const T* __restrict s) {
    for (long i = 0; i < hs_; ++i) {
      yr[i] *= s[i];
      yi[i] *= s[i];
    }
  }
  FASTINTERP_SIMD_CLONES void heun_predict(T* __restrict wr, T* __restrict wi) {
    const T h = static_cast<T>(tb_.cfg.dt / 2);
    const T* __restrict E = lin_.data();
    for (long i = 0; i < hs_; ++i) {
      wr[i] = E[i] * (sr_[i] + h * n1r_[i]);
      wi[i] = E[i] * (si_[i] + h * n1i_[i]);
    }
  }
  FASTINTERP_SIMD_CLONES void heun_correct(T* __restrict wr, T* __restrict wi, T h) {
    const T* __restrict E = lin_.data();
    for (long i = 0; i < hs_; ++i) {
      wr[i] = E[i] * sr_[i] + h * n2r_[i];
      wi[i] = E[i] * si_[i] + h * n2i_[i];
    }
  }
  void add_noise(T* wr, T* wi, const double* dW) {
    const double eps = tb_.cfg.eps;
    for (int j = 0; j < tb_.cfg.modes; ++j) {
      const double a = eps * dW[j];
      for (const auto& e : tb_.forcing[j]) {
        wr[e.index] += static_cast<T>(a * e.re);
        wi[e.index] += static_cast<T>(a * e.im);
      }
    }
  }

  const NSTables& tb_;
  fft::RealFFT2D<T> plan_;
  long n_, m_, hs_, ps_;
  std::vector<T> kx_, ky_, kxr_, kyr_, ik2_, lin_;
  std::vector<T> ur_, ui_, vr_, vi_, xr_, xi_, n1r_, n1i_, n2r_, n2i_, sr_, si_;  // half spectra
  std::vector<T> u_, v_;                                                          // physical fields
};

template <class T>
py::tuple ns_run_impl(const NSConfig& cfg, const py::array& state, long burn, long every, long snapshots, long step0,
                      uint64_t seed, uint64_t first, const std::optional<py::array>& dW, int threads) {
  const long n = cfg.n, m = n / 2 + 1, hs = n * m;
  const long num = state.shape(0);
  const long total = snapshots > 0 ? burn + (snapshots - 1) * every : burn;
  if (dW) {
    if (dW->ndim() != 3 || dW->shape(0) != num || dW->shape(1) != total || dW->shape(2) != cfg.modes)
      throw py::value_error("dW must have shape (num, steps, modes) = (" + std::to_string(num) + ", " +
                            std::to_string(total) + ", " + std::to_string(cfg.modes) + "), got " +
                            pde::shape_str(*dW));
  }
  if (static_cast<uint64_t>(step0) + static_cast<uint64_t>(total) > (1ULL << 32))
    throw py::value_error("step0 + steps must be <= 2^32");
  if (first + static_cast<uint64_t>(num) > (1ULL << 32)) throw py::value_error("first + num must be <= 2^32");
  py::array_t<std::complex<T>> out({num, n, m});
  py::array_t<T> snaps({num, snapshots, n, n});
  const std::complex<T>* pin = static_cast<const std::complex<T>*>(state.data());
  std::complex<T>* pout = out.mutable_data();
  T* psnap = snaps.mutable_data();
  const double* pdw = dW ? static_cast<const double*>(dW->data()) : nullptr;
  std::vector<long> bad(num, -1);
  {
    py::gil_scoped_release nogil;
    const NSTables tables(cfg);
    std::atomic<long> next{0};
    pde::parallel_workers(static_cast<int>(std::min<long>(threads, std::max<long>(num, 1))), [&](int) {
      NSWorker<T> wk(tables);
      std::vector<T> wr(hs), wi(hs);
      std::vector<double> z(cfg.modes);
      const double sdt = std::sqrt(cfg.dt);
      for (long t; (t = next.fetch_add(1)) < num;) {
        for (long i = 0; i < hs; ++i) {
          wr[i] = pin[t * hs + i].real();
          wi[i] = pin[t * hs + i].imag();
        }
        long snap = 0;
        auto maybe_snapshot = [&](long done) {
          if (snap < snapshots && done == burn + snap * every) {
            wk.physical(wr.data(), wi.data(), psnap + (t * snapshots + snap) * n * n);
            ++snap;
          }
        };
        maybe_snapshot(0);
        for (long s = 0; s < total; ++s) {
          if (pdw) {
            for (int j = 0; j < cfg.modes; ++j) z[j] = pdw[(t * total + s) * cfg.modes + j];
          } else {
            rng::Stream{seed, kTagNoise, first + static_cast<uint64_t>(t), static_cast<uint64_t>(step0 + s)}.fill(
                0, cfg.modes, z.data());
            for (int j = 0; j < cfg.modes; ++j) z[j] *= sdt;
          }
          wk.step(wr.data(), wi.data(), z.data());
          if ((s & 63) == 63 && !std::isfinite(static_cast<double>(wr[1]))) {
            bad[t] = step0 + s;
            break;
          }
          maybe_snapshot(s + 1);
        }
        bool finite = bad[t] < 0;
        for (long i = 0; i < hs && finite; ++i) finite = std::isfinite(wr[i]) && std::isfinite(wi[i]);
        if (!finite && bad[t] < 0) bad[t] = step0 + total;
        for (long i = 0; i < hs; ++i) pout[t * hs + i] = std::complex<T>(wr[i], wi[i]);
      }
    });
  }
  for (long t = 0; t < num; ++t)
    if (bad[t] >= 0)
      throw pde::Diverged(
          "Navier-Stokes trajectory " + std::to_string(first + t) + " diverged (non-finite vorticity) by step " +
          std::to_string(bad[t]) + " at dt = " + pde::num_str(cfg.dt));
  return py::make_tuple(out, snaps);
}

template <class T>
py::array initial_impl(long n, long num, uint64_t seed, uint64_t first, double k0, double w_rms) {
  const long m = n / 2 + 1, hs = n * m;
  const long kmax = (n - 1) / 3;
  std::vector<double> amp(hs, 0.0);
  double total = 0;  // sum of the bump over the full grid (the half grid counts twice except self-conjugate columns)
  for (long a = 0; a < n; ++a)
    for (long b = 0; b < m; ++b) {
      const double kx = static_cast<double>(a <= n / 2 ? a : a - n), ky = static_cast<double>(b);
      const double k = std::sqrt(kx * kx + ky * ky);
      if (k == 0 || std::fabs(kx) > kmax || ky > kmax) continue;
      const double bump = std::exp(-(k - k0) * (k - k0));
      amp[a * m + b] = bump;
      total += (b == 0 || b == n / 2) ? bump : 2 * bump;
    }
  const double nn = static_cast<double>(n * n);
  for (auto& v : amp) v = nn * w_rms * std::sqrt(v / total);
  py::array_t<std::complex<T>> out({num, n, m});
  std::complex<T>* po = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::vector<T> re(hs), im(hs);
    std::vector<double> z0(hs), z1(hs);
    for (long t = 0; t < num; ++t) {
      spectral::draw_hermitian<T>(rng::Stream{seed, kTagInit, first + static_cast<uint64_t>(t), 0}, amp.data(), n, 2,
                                  re.data(), im.data(), z0.data(), z1.data());
      for (long i = 0; i < hs; ++i) po[t * hs + i] = std::complex<T>(re[i], im[i]);
    }
  }
  return out;
}

}  // namespace

void bind_navier_stokes(py::module_& m) {
  py::class_<NSConfig>(m, "NSConfig",
                       "Parameters of a Navier-Stokes run (read-only; defaults, ranges and documentation: "
                       "fastinterp.pde.spec). The constructor checks only the solver's invariants.")
      .def(py::init([](long n, double nu, double alpha, double eps, double dt, int modes, const std::string& scheme,
                       bool advection) {
             NSConfig c;
             c.n = n;
             c.nu = nu;
             c.alpha = alpha;
             c.eps = eps;
             c.dt = dt;
             c.modes = modes;
             c.scheme = parse_scheme(scheme);
             c.advection = advection;
             c.validate();
             return c;
           }),
           py::kw_only(), py::arg("n"), py::arg("nu"), py::arg("alpha"), py::arg("eps"), py::arg("dt"),
           py::arg("modes"), py::arg("scheme"), py::arg("advection"))
      .def_readonly("n", &NSConfig::n)
      .def_readonly("nu", &NSConfig::nu)
      .def_readonly("alpha", &NSConfig::alpha)
      .def_readonly("eps", &NSConfig::eps)
      .def_readonly("dt", &NSConfig::dt)
      .def_readonly("modes", &NSConfig::modes)
      .def_property_readonly("scheme", &NSConfig::scheme_name)
      .def_readonly("advection", &NSConfig::advection)
      .def("__repr__", [](const NSConfig& c) {
        return "NSConfig(n=" + std::to_string(c.n) + ", nu=" + pde::num_str(c.nu) + ", alpha=" +
               pde::num_str(c.alpha) + ", eps=" + pde::num_str(c.eps) + ", dt=" + pde::num_str(c.dt) +
               ", modes=" + std::to_string(c.modes) + ", scheme='" + c.scheme_name() +
               "', advection=" + (c.advection ? "True" : "False") + ")";
      });
  m.def(
      "ns_run",
      [](const py::object& state, const NSConfig& cfg, long burn, long every, long snapshots, long step0,
         uint64_t seed, uint64_t first, const py::object& dW, long threads) -> py::tuple {
        if (!py::isinstance<py::array>(state)) throw py::type_error("state must be a numpy array");
        const py::array st = py::reinterpret_borrow<py::array>(state);
        const bool single = st.dtype().kind() == 'c' && st.dtype().itemsize() == 8;
        const py::array s = single ? pde::checked_array<float>(state, "state", 3, 3, true)
                                   : pde::checked_array<double>(state, "state", 3, 3, true);
        const long n = cfg.n;
        if (s.shape(1) != n || s.shape(2) != n / 2 + 1)
          throw py::value_error("state must have shape (num, n, n/2+1) with n = config.n = " + std::to_string(n) +
                                ", got " + pde::shape_str(s));
        if (burn < 0 || every < 1 || snapshots < 0 || step0 < 0)
          throw py::value_error("need burn >= 0, every >= 1, snapshots >= 0, step0 >= 0; got burn=" +
                                std::to_string(burn) + ", every=" + std::to_string(every) +
                                ", snapshots=" + std::to_string(snapshots) + ", step0=" + std::to_string(step0));
        std::optional<py::array> dw;
        if (!dW.is_none()) dw = pde::checked_array<double>(dW, "dW", 3, 3);
        const int th = pde::resolve_threads(threads);
        if (single) return ns_run_impl<float>(cfg, s, burn, every, snapshots, step0, seed, first, dw, th);
        return ns_run_impl<double>(cfg, s, burn, every, snapshots, step0, seed, first, dw, th);
      },
      py::arg("state"), py::arg("config"), py::kw_only(), py::arg("burn"), py::arg("every") = 1,
      py::arg("snapshots") = 0, py::arg("step0") = 0, py::arg("seed") = 0, py::arg("first") = 0,
      py::arg("dW") = py::none(), py::arg("threads") = 1,
      "Integrate stochastic 2-D Navier-Stokes with the parameters `config` (an NSConfig) from `state` "
      "(num, n, n/2+1) complex (= numpy.fft.rfft2 of the vorticity; complex64 runs in float32). Runs burn + (snapshots-1)*every steps (burn if snapshots = 0), "
      "snapshot s after burn + s*every steps. Returns (final state, snapshots (num, snapshots, n, n)). Noise: "
      "counter-based from (seed, first + i, step0 + s), or the explicit Brownian increments dW (num, steps, modes).");
  m.def(
      "ns_initial_state",
      [](long n, long num, uint64_t seed, uint64_t first, double k0, double w_rms, const std::string& dtype) {
        if (n < 32 || n > 2048 || !pde::is_pow2(n))
          throw py::value_error("n must be a power of two in [32, 2048], got " + std::to_string(n));
        if (num < 0) throw py::value_error("num must be >= 0, got " + std::to_string(num));
        pde::require_finite(k0, "k0");
        pde::require_finite(w_rms, "w_rms");
        if (k0 <= 0 || w_rms < 0) throw py::value_error("need k0 > 0 and w_rms >= 0");
        if (dtype == "float64") return initial_impl<double>(n, num, seed, first, k0, w_rms);
        if (dtype == "float32") return initial_impl<float>(n, num, seed, first, k0, w_rms);
        throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
      },
      py::arg("n"), py::arg("num"), py::kw_only(), py::arg("seed"), py::arg("first") = 0, py::arg("k0"),
      py::arg("w_rms"), py::arg("dtype") = "float64",
      "Random initial vorticity spectra (num, n, n/2+1): Gaussian, modal variance proportional to "
      "exp(-(|k| - k0)^2) on the dealiased modes, k != 0, scaled to spatial RMS w_rms in expectation.");
  m.def(
      "ns_noise",
      [](uint64_t seed, uint64_t first, long num, long step0, long steps, int modes) {
        if (num < 0 || steps < 0 || step0 < 0) throw py::value_error("num, steps and step0 must be >= 0");
        if (modes != 4 && modes != 8) throw py::value_error("modes must be 4 or 8, got " + std::to_string(modes));
        if (static_cast<uint64_t>(step0 + steps) > (1ULL << 32) || first + static_cast<uint64_t>(num) > (1ULL << 32))
          throw py::value_error("step and trajectory indices must stay below 2^32");
        py::array_t<double> out({num, steps, static_cast<long>(modes)});
        double* p = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          for (long t = 0; t < num; ++t)
            for (long s = 0; s < steps; ++s)
              rng::Stream{seed, kTagNoise, first + static_cast<uint64_t>(t), static_cast<uint64_t>(step0 + s)}.fill(
                  0, modes, p + (t * steps + s) * modes);
        }
        return out;
      },
      py::arg("seed"), py::arg("first"), py::arg("num"), py::arg("step0"), py::arg("steps"), py::arg("modes"),
      "The standard normals ns_run draws (before the sqrt(dt) scaling): shape (num, steps, modes).");
  m.def(
      "ns_forcing",
      [](long n, int modes) {
        NSConfig c;  // the forcing depends on n and modes only
        c.n = n;
        c.modes = modes;
        c.eps = c.dt = 1.0;
        c.validate();
        const NSTables tb(c);
        py::list out;
        for (int j = 0; j < modes; ++j) {
          py::list l;
          for (const auto& e : tb.forcing[j]) l.append(py::make_tuple(e.index, e.re, e.im));
          out.append(l);
        }
        return out;
      },
      py::arg("n"), py::arg("modes"),
      "Sparse unnormalised rfft2 of the forcing modes: for each mode a list of (flat half-grid index, re, im).");
}
