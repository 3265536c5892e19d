// csrc/allen_cahn.cpp -- bindings of the stochastic Allen-Cahn samplers (csrc/allen_cahn.hpp): pCN chains of the
// discrete Gibbs measure and the exponential Euler-Maruyama SPDE. One chain / trajectory per work item, any thread
// count gives the same bits (randomness keyed by (seed, chain, step)); the GIL is released while they run.
// The pCN parameters arrive as one struct, ACConfig (built by fastinterp/pde/allen_cahn.py from the spec's values).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "allen_cahn.hpp"
#include "pde_common.hpp"
#include "rng.hpp"

namespace py = pybind11;
using namespace fastinterp;
using allen_cahn::Gibbs1D;
using allen_cahn::PcnChain;
using allen_cahn::Basis;
using allen_cahn::Spde;

namespace {

constexpr uint64_t kMaxIndex = 1ULL << 32;  // rng::Stream keeps 32-bit chain and step counters

void check_indices(uint64_t first, long num, long step0, long steps) {
  if (num < 0 || steps < 0 || step0 < 0)
    throw py::value_error("num, steps and step0 must be >= 0, got num=" + std::to_string(num) +
                          ", steps=" + std::to_string(steps) + ", step0=" + std::to_string(step0));
  if (static_cast<uint64_t>(step0) + static_cast<uint64_t>(steps) > kMaxIndex ||
      first + static_cast<uint64_t>(num) > kMaxIndex)
    throw py::value_error("chain (first + i) and step (step0 + s) indices must stay below 2^32");
}

// The parameters of a pCN run, passed as one struct (bound as fastinterp._core.ACConfig). Their defaults, ranges and
// documentation live in fastinterp/pde/spec.py (ALLEN_CAHN), which checks user input; validate() only guards the
// invariants the sampler relies on (for direct _core calls), with short messages.
struct ACConfig {
  long n = 0;  // intervals N; no defaults here: they are the spec's
  bool pinned = false;  // boundary "pinned" (u_0 = u_N = 0) or "free"
  double vscale = 0;    // potential "double_well" (1) or "none" (0)
  double mass = 0, target_accept = 0;

  void validate() const {
    if (n < 2 || n > (1L << 20))
      throw std::invalid_argument("ACConfig: n must be in [2, 2^20], got " + std::to_string(n));
    if (!(std::isfinite(mass) && (pinned ? mass >= 0 : mass > 0)))
      throw std::invalid_argument(std::string("ACConfig: mass must be finite and ") +
                                  (pinned ? ">= 0" : "> 0 with free ends") + ", got " + pde::num_str(mass));
    if (!(std::isfinite(target_accept) && target_accept > 0 && target_accept < 1))
      throw std::invalid_argument("ACConfig: target_accept must be in (0, 1), got " + pde::num_str(target_accept));
  }
  const char* boundary_name() const { return pinned ? "pinned" : "free"; }
  const char* potential_name() const { return vscale != 0 ? "double_well" : "none"; }
  Gibbs1D gibbs() const { return Gibbs1D(n, pinned, vscale, mass); }
};

template <class F>
void for_each_item(long num, int threads, F&& body) {
  std::atomic<long> next{0};
  pde::parallel_workers(std::min<long>(threads, std::max<long>(num, 1)), [&](int) {
    for (long i; (i = next.fetch_add(1)) < num;) body(i);
  });
}

// "float64" / "float32" -> false / true; anything else is a ValueError.
bool single_precision(const std::string& dtype) {
  if (dtype == "float64") return false;
  if (dtype == "float32") return true;
  throw py::value_error("dtype must be 'float64' or 'float32', got '" + dtype + "'");
}

// The chain runs in double (state, proposal, Phi, accept ratio, theta); S is only the dtype the recorded samples are
// rounded to (float32 halves the memory of long runs; the kept samples are exactly the float64 chain's, rounded once).
template <class S>
py::array mcmc_samples(long num, long ns, long nn) {
  return py::array_t<S>({num, ns, nn});
}

py::tuple mcmc_run(const py::object& u_obj, const py::object& theta_obj, const ACConfig& cfg, uint64_t seed,
                   uint64_t first, long step0, long steps, long adapt_until, long thin, const py::object& z_obj,
                   const py::object& unif_obj, long threads, const std::string& dtype) {
  const bool single = single_precision(dtype);
  const Gibbs1D g = cfg.gibbs();
  const long n = cfg.n;
  const double target = cfg.target_accept;
  const py::array ua = pde::checked_array<double>(u_obj, "u", 2, 2);
  const py::array ta = pde::checked_array<double>(theta_obj, "theta", 1, 1);
  const long num = ua.shape(0);
  if (ua.shape(1) != n + 1)
    throw py::value_error("u must have shape (chains, n + 1) = (chains, " + std::to_string(n + 1) + "), got " +
                          pde::shape_str(ua));
  if (ta.shape(0) != num)
    throw py::value_error("theta must have shape (" + std::to_string(num) + ",), got " + pde::shape_str(ta));
  check_indices(first, num, step0, steps);
  if (adapt_until < 0) throw py::value_error("adapt_until must be >= 0, got " + std::to_string(adapt_until));
  if (thin < 1) throw py::value_error("thin must be >= 1, got " + std::to_string(thin));
  std::optional<py::array> za, una;
  if (z_obj.is_none() != unif_obj.is_none()) throw py::value_error("z and unif must be given together");
  if (!z_obj.is_none()) {
    za = pde::checked_array<double>(z_obj, "z", 3, 3);
    una = pde::checked_array<double>(unif_obj, "unif", 2, 2);
    if (za->shape(0) != num || za->shape(1) != steps || za->shape(2) != g.dof)
      throw py::value_error("z must have shape (chains, steps, dof) = (" + std::to_string(num) + ", " +
                            std::to_string(steps) + ", " + std::to_string(g.dof) + "), got " + pde::shape_str(*za));
    if (una->shape(0) != num || una->shape(1) != steps)
      throw py::value_error("unif must have shape (" + std::to_string(num) + ", " + std::to_string(steps) +
                            "), got " + pde::shape_str(*una));
  }
  const int th = pde::resolve_threads(threads);
  const long nn = n + 1, ns = steps / thin;
  py::array_t<double> u_out({num, nn}), theta_out(num);
  py::array samples = single ? mcmc_samples<float>(num, ns, nn) : mcmc_samples<double>(num, ns, nn);
  py::array_t<int64_t> accepted(num);
  py::array_t<double> alpha_sum(num);
  const double* u_in = static_cast<const double*>(ua.data());
  const double* t_in = static_cast<const double*>(ta.data());
  for (long c = 0; c < num; ++c)
    if (!std::isfinite(t_in[c])) throw py::value_error("theta must be finite");
  for (long i = 0; i < num * nn; ++i)
    if (!std::isfinite(u_in[i])) throw py::value_error("u must be finite");
  const double* zp = za ? static_cast<const double*>(za->data()) : nullptr;
  const double* up = una ? static_cast<const double*>(una->data()) : nullptr;
  double* uo = u_out.mutable_data();
  double* to = theta_out.mutable_data();
  double* so64 = single ? nullptr : static_cast<double*>(samples.mutable_data());
  float* so32 = single ? static_cast<float*>(samples.mutable_data()) : nullptr;
  int64_t* ao = accepted.mutable_data();
  double* as = alpha_sum.mutable_data();
  std::copy(u_in, u_in + num * nn, uo);
  {
    py::gil_scoped_release nogil;
    for_each_item(num, th, [&](long c) {
      PcnChain ch(g, uo + c * nn, t_in[c]);
      const uint64_t chain = first + static_cast<uint64_t>(c);
      int64_t acc = 0;
      double asum = 0.0;
      for (long r = 0; r < steps; ++r) {
        const uint64_t s = static_cast<uint64_t>(step0 + r);
        const double* z;
        double un;
        if (zp) {
          z = zp + (c * steps + r) * g.dof;
          un = up[c * steps + r];
        } else {
          rng::Stream{seed, allen_cahn::kTagProposal, chain, s}.fill(0, g.dof, ch.z.data());
          z = ch.z.data();
          un = allen_cahn::uniform(seed, chain, s);
        }
        bool a;
        asum += ch.step(z, un, s, static_cast<uint64_t>(adapt_until), target, &a);
        acc += a;
        if ((r + 1) % thin == 0) {
          const long at = (c * ns + (r + 1) / thin - 1) * nn;
          if (so32)
            for (long j = 0; j < nn; ++j) so32[at + j] = static_cast<float>(ch.u[j]);  // round to nearest
          else
            std::copy(ch.u, ch.u + nn, so64 + at);
        }
      }
      to[c] = ch.theta;
      ao[c] = acc;
      as[c] = asum;
    });
  }
  return py::make_tuple(u_out, theta_out, samples, accepted, alpha_sum);
}

py::array_t<double> mcmc_init(long num, const ACConfig& cfg, uint64_t seed, uint64_t first) {
  const Gibbs1D g = cfg.gibbs();  // the reference N(0, P^{-1}) does not depend on the potential
  const long n = cfg.n;
  check_indices(first, num, 0, 0);
  py::array_t<double> out({num, n + 1});
  double* p = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::vector<double> z(g.dof);
    for (long c = 0; c < num; ++c) {
      rng::Stream{seed, allen_cahn::kTagInit, first + static_cast<uint64_t>(c), 0}.fill(0, g.dof, z.data());
      g.reference(z.data(), p + c * (n + 1));
    }
  }
  return out;
}

py::tuple mcmc_noise(uint64_t seed, uint64_t first, long num, long step0, long steps, long dof) {
  check_indices(first, num, step0, steps);
  if (dof < 1) throw py::value_error("dof must be >= 1, got " + std::to_string(dof));
  py::array_t<double> z({num, steps, dof}), un({num, steps});
  double* zp = z.mutable_data();
  double* up = un.mutable_data();
  {
    py::gil_scoped_release nogil;
    for (long c = 0; c < num; ++c)
      for (long r = 0; r < steps; ++r) {
        const uint64_t chain = first + static_cast<uint64_t>(c), s = static_cast<uint64_t>(step0 + r);
        rng::Stream{seed, allen_cahn::kTagProposal, chain, s}.fill(0, dof, zp + (c * steps + r) * dof);
        up[c * steps + r] = allen_cahn::uniform(seed, chain, s);
      }
  }
  return py::make_tuple(z, un);
}

// ---- SPDE ----

Basis parse_basis(const std::string& b) {
  if (b == "free") return Basis::free;
  if (b == "pinned") return Basis::pinned;
  if (b == "periodic") return Basis::periodic;
  throw py::value_error("boundary must be 'free', 'pinned' or 'periodic', got '" + b + "'");
}

// The FFT basis of `boundary` on n intervals (periodic: n nodes), after checking the FFT can do it.
void check_fft_basis(Basis b, long n, const std::string& boundary) {
  if (!allen_cahn::fft_supported(b, n))
    throw py::value_error("the FFT transforms need a power of two n with FFT size " +
                          std::string(b == Basis::periodic ? "n" : "2n") + " in [4, 2^24]; got n=" +
                          std::to_string(n) + " for boundary '" + boundary + "' (use transform='dense')");
}

// One worker's transforms: the shared dense tables, or its own FFT plan and scratch.
template <class T>
struct SpdeWorker {
  const Spde<T>& sp;
  std::optional<allen_cahn::FftModes<T>> fft;
  std::vector<T> tmp;
  SpdeWorker(const Spde<T>& s, const std::optional<Basis>& b, long n) : sp(s) {
    if (b)
      fft.emplace(*b, n, sp.dim, sp.dim == 2 ? sp.nodes : 1);
    else
      tmp.resize(sp.modes * sp.nodes);
  }
  void synth(const T* a, T* u) {
    if (fft)
      fft->synth(a, u);
    else
      sp.synth(a, u, tmp.data());
  }
  void analyse(const T* g, T* G) {
    if (fft)
      fft->analyse(g, G);
    else
      sp.analyse(g, G, tmp.data());
  }
};

// The exponential step is exact for the Laplacian; the double-well drift -V'(u)/2 = -2u(u^2 - 1) is explicit. A
// diverged run reports the fact only; the advice on dt is Python's (fastinterp/pde/allen_cahn.py, _SPDE_ADVICE).

template <class T>
py::tuple spde_run_impl(const py::array& aa, const py::array* phia, const std::optional<Basis>& fft_basis, long fft_n,
                        const double* wp, const double* mup, long nodes, long modes, int dim, bool midpoint,
                        double vscale, double dt, long burn, long every, long snapshots, long step0, uint64_t seed,
                        uint64_t first, const std::optional<py::array>& na, int th) {
  Spde<T> sp;
  sp.dim = dim;
  sp.nodes = nodes;
  sp.modes = modes;
  sp.midpoint = midpoint;
  sp.vscale = static_cast<T>(vscale);
  sp.h = static_cast<T>(1.0 / static_cast<double>(nodes - 1));  // 1-D midpoint form: nodes = N + 1
  if (phia) {
    const double* phip = static_cast<const double*>(phia->data());
    sp.phi.resize(nodes * modes);
    sp.phit.resize(nodes * modes);
    for (long j = 0; j < nodes; ++j)
      for (long k = 0; k < modes; ++k) sp.phit[k * nodes + j] = sp.phi[j * modes + k] = static_cast<T>(phip[j * modes + k]);
  }
  sp.w.resize(nodes);
  for (long j = 0; j < nodes; ++j) sp.w[j] = static_cast<T>(wp[j]);
  const long M = sp.total_modes(), Nn = sp.total_nodes();
  sp.ea.resize(M);
  sp.ca.resize(M);
  sp.sa.resize(M);
  for (long i = 0; i < M; ++i) {  // in double, rounded once
    const double mu = dim == 2 ? mup[i / modes] + mup[i % modes] : mup[i];
    if (mu == 0.0) {
      sp.ea[i] = T(1);
      sp.ca[i] = static_cast<T>(dt);
      sp.sa[i] = static_cast<T>(std::sqrt(2.0 * dt));
    } else {
      sp.ea[i] = static_cast<T>(std::exp(-mu * dt));
      sp.ca[i] = static_cast<T>(-std::expm1(-mu * dt) / mu);
      sp.sa[i] = static_cast<T>(std::sqrt(-std::expm1(-2.0 * mu * dt) / mu));
    }
  }
  const long num = aa.shape(0);
  const long total = snapshots > 0 ? burn + (snapshots - 1) * every : burn;
  const T* a_in = static_cast<const T*>(aa.data());
  for (long i = 0; i < num * M; ++i)
    if (!std::isfinite(a_in[i])) throw py::value_error("state must be finite");
  std::vector<py::ssize_t> ashape{num, modes}, sshape{num, snapshots, nodes};
  if (dim == 2) {
    ashape.push_back(modes);
    sshape.push_back(nodes);
  }
  py::array_t<T> a_out(ashape), snaps(sshape);
  T* ao = a_out.mutable_data();
  T* so = snaps.mutable_data();
  std::copy(a_in, a_in + num * M, ao);
  const double* np_ = na ? static_cast<const double*>(na->data()) : nullptr;
  std::vector<long> bad(num, -1);  // the step by which trajectory c met non-finite values, -1: none
  {
    py::gil_scoped_release nogil;
    std::atomic<long> next{0};
    pde::parallel_workers(std::min<long>(th, std::max<long>(num, 1)), [&](int) {
      SpdeWorker<T> wk(sp, fft_basis, fft_n);
      std::vector<T> u(Nn), g(Nn), G(M);
      std::vector<double> z(M);
      for (long c; (c = next.fetch_add(1)) < num;) {
        T* a = ao + c * M;
        const uint64_t traj = first + static_cast<uint64_t>(c);
        long taken = 0;
        auto snap = [&](long done) {
          if (taken < snapshots && done == burn + taken * every) {
            wk.synth(a, so + (c * snapshots + taken) * Nn);
            ++taken;
          }
        };
        snap(0);
        for (long r = 0; r < total; ++r) {
          const double* zz;  // standard normals, in double (generated or injected), rounded to T at use
          if (np_) {
            zz = np_ + (c * total + r) * M;
          } else {
            rng::Stream{seed, allen_cahn::kTagSpde, traj, static_cast<uint64_t>(step0 + r)}.fill(0, M, z.data());
            zz = z.data();
          }
          if (sp.vscale != T(0)) {
            wk.synth(a, u.data());
            sp.grad_psi(u.data(), g.data());
            wk.analyse(g.data(), G.data());
            for (long i = 0; i < M; ++i) a[i] = sp.ea[i] * a[i] - sp.ca[i] * G[i] + sp.sa[i] * static_cast<T>(zz[i]);
          } else {
            for (long i = 0; i < M; ++i) a[i] = sp.ea[i] * a[i] + sp.sa[i] * static_cast<T>(zz[i]);
          }
          if ((r & 63) == 63 && !std::isfinite(static_cast<double>(a[0]))) {  // the nonlinearity spreads it
            bad[c] = step0 + r + 1;
            break;
          }
          snap(r + 1);
        }
        bool finite = bad[c] < 0;
        for (long i = 0; i < M && finite; ++i) finite = std::isfinite(static_cast<double>(a[i]));
        if (!finite && bad[c] < 0) bad[c] = step0 + total;
      }
    });
  }
  for (long c = 0; c < num; ++c)
    if (bad[c] >= 0)
      throw pde::Diverged("Allen-Cahn SPDE trajectory " + std::to_string(first + static_cast<uint64_t>(c)) +
                          " diverged (non-finite values) by step " + std::to_string(bad[c]) + " at dt = " +
                          pde::num_str(dt));
  return py::make_tuple(a_out, snaps);
}

// The state's dtype picks the arithmetic: float64 or float32 (anything else is a TypeError).
bool state_is_single(const py::object& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  if (a.dtype().kind() == 'f' && a.dtype().itemsize() == 4) return true;
  if (a.dtype().kind() == 'f' && a.dtype().itemsize() == 8) return false;
  throw py::type_error(std::string(name) + " must have dtype float64 or float32 (it picks the arithmetic), got " +
                       pde::dtype_str(a));
}

py::tuple spde_run(const py::object& a_obj, const py::object& phi_obj, const std::string& transform,
                   const std::string& boundary, const py::object& w_obj, const py::object& mu_obj, int dim,
                   bool midpoint, double vscale, double dt, long burn, long every, long snapshots, long step0,
                   uint64_t seed, uint64_t first, const py::object& noise_obj, long threads) {
  if (dim != 1 && dim != 2) throw py::value_error("dim must be 1 or 2, got " + std::to_string(dim));
  pde::require_finite(dt, "dt");
  pde::require_finite(vscale, "vscale");
  if (dt <= 0) throw py::value_error("dt must be > 0, got " + std::to_string(dt));
  if (vscale < 0) throw py::value_error("vscale must be >= 0, got " + std::to_string(vscale));
  if (burn < 0 || every < 1 || snapshots < 0)
    throw py::value_error("need burn >= 0, every >= 1, snapshots >= 0; got burn=" + std::to_string(burn) +
                          ", every=" + std::to_string(every) + ", snapshots=" + std::to_string(snapshots));
  if (transform != "dense" && transform != "fft")
    throw py::value_error("transform must be 'dense' or 'fft', got '" + transform + "'");
  const Basis basis = parse_basis(boundary);
  const py::array wa = pde::checked_array<double>(w_obj, "weights", 1, 1);
  const py::array mua = pde::checked_array<double>(mu_obj, "mu", 1, 1);
  std::optional<py::array> phia;
  std::optional<Basis> fft_basis;
  long nodes, modes, fft_n = 0;
  if (transform == "dense") {
    if (phi_obj.is_none()) throw py::value_error("transform='dense' needs phi");
    phia = pde::checked_array<double>(phi_obj, "phi", 2, 2);
    nodes = phia->shape(0);
    modes = phia->shape(1);
    if (nodes < 2 || modes < 1 || modes > nodes)
      throw py::value_error("phi must have shape (nodes, modes) with nodes >= 2 and 1 <= modes <= nodes, got " +
                            pde::shape_str(*phia));
    const double* phip = static_cast<const double*>(phia->data());
    for (long i = 0; i < nodes * modes; ++i)
      if (!std::isfinite(phip[i])) throw py::value_error("phi must be finite");
  } else {
    if (!phi_obj.is_none()) throw py::value_error("transform='fft' builds its own basis: pass phi=None");
    nodes = wa.shape(0);
    fft_n = basis == Basis::periodic ? nodes : nodes - 1;
    check_fft_basis(basis, fft_n, boundary);
    modes = allen_cahn::basis_modes(basis, fft_n);
    fft_basis = basis;
  }
  if (wa.shape(0) != nodes || mua.shape(0) != modes)
    throw py::value_error("weights must have shape (nodes,) = (" + std::to_string(nodes) + ",) and mu (modes,) = (" +
                          std::to_string(modes) + ",), got " + pde::shape_str(wa) + " and " + pde::shape_str(mua));
  const double* wp = static_cast<const double*>(wa.data());
  const double* mup = static_cast<const double*>(mua.data());
  for (long k = 0; k < modes; ++k)
    if (!std::isfinite(mup[k]) || mup[k] < 0) throw py::value_error("mu must be finite and >= 0");
  for (long j = 0; j < nodes; ++j)
    if (!std::isfinite(wp[j]) || wp[j] < 0) throw py::value_error("weights must be finite and >= 0");
  const bool single = state_is_single(a_obj, "state");
  const py::array aa = single ? pde::checked_array<float>(a_obj, "state", dim + 1, dim + 1)
                              : pde::checked_array<double>(a_obj, "state", dim + 1, dim + 1);
  const long num = aa.shape(0);
  if (aa.shape(1) != modes || (dim == 2 && aa.shape(2) != modes))
    throw py::value_error("state must have shape (num" + std::string(dim == 2 ? ", modes, modes" : ", modes") +
                          ") with modes = " + std::to_string(modes) + ", got " + pde::shape_str(aa));
  const long total = snapshots > 0 ? burn + (snapshots - 1) * every : burn;
  check_indices(first, num, step0, total);
  const long M = dim == 2 ? modes * modes : modes;
  std::optional<py::array> na;
  if (!noise_obj.is_none()) {
    na = pde::checked_array<double>(noise_obj, "noise", 3, 3);
    if (na->shape(0) != num || na->shape(1) != total || na->shape(2) != M)
      throw py::value_error("noise must have shape (num, steps, modes^dim) = (" + std::to_string(num) + ", " +
                            std::to_string(total) + ", " + std::to_string(M) + "), got " + pde::shape_str(*na));
  }
  const int th = pde::resolve_threads(threads);
  const py::array* pp = phia ? &*phia : nullptr;
  if (single)
    return spde_run_impl<float>(aa, pp, fft_basis, fft_n, wp, mup, nodes, modes, dim, midpoint, vscale, dt, burn,
                                every, snapshots, step0, seed, first, na, th);
  return spde_run_impl<double>(aa, pp, fft_basis, fft_n, wp, mup, nodes, modes, dim, midpoint, vscale, dt, burn, every,
                               snapshots, step0, seed, first, na, th);
}

// The FFT modal transforms alone (tests and benchmarks): synth x = a (batch, modes[, modes]) -> Phi a [Phi^T], or
// analyse x = g (batch, nodes[, nodes]) -> Phi^T g [Phi]. float32 or float64 in and out.
template <class T>
py::array modal_fft_impl(const py::array& x, Basis b, long n, int dim, bool synth) {
  const long nodes = allen_cahn::basis_nodes(b, n), modes = allen_cahn::basis_modes(b, n);
  const long in = synth ? modes : nodes, out = synth ? nodes : modes;
  for (int d = 1; d <= dim; ++d)
    if (x.shape(d) != in)
      throw py::value_error(std::string(synth ? "a" : "g") + " must have shape (batch" + (dim == 2 ? ", m, m" : ", m") +
                            ") with m = " + std::to_string(in) + ", got " + pde::shape_str(x));
  const long num = x.shape(0), isz = dim == 2 ? in * in : in, osz = dim == 2 ? out * out : out;
  std::vector<py::ssize_t> shape{num, out};
  if (dim == 2) shape.push_back(out);
  py::array_t<T> res(shape);
  const T* px = static_cast<const T*>(x.data());
  T* pr = res.mutable_data();
  {
    py::gil_scoped_release nogil;
    allen_cahn::FftModes<T> f(b, n, dim, dim == 2 ? nodes : 1);
    for (long i = 0; i < num; ++i) {
      if (synth)
        f.synth(px + i * isz, pr + i * osz);
      else
        f.analyse(px + i * isz, pr + i * osz);
    }
  }
  return res;
}

py::array_t<double> spde_noise(uint64_t seed, uint64_t first, long num, long step0, long steps, long count,
                               bool init) {
  check_indices(first, num, step0, steps);
  if (count < 1) throw py::value_error("count must be >= 1, got " + std::to_string(count));
  py::array_t<double> z({num, steps, count});
  double* zp = z.mutable_data();
  const uint32_t tag = init ? allen_cahn::kTagSpdeInit : allen_cahn::kTagSpde;
  {
    py::gil_scoped_release nogil;
    for (long c = 0; c < num; ++c)
      for (long r = 0; r < steps; ++r)
        rng::Stream{seed, tag, first + static_cast<uint64_t>(c), static_cast<uint64_t>(step0 + r)}.fill(
            0, count, zp + (c * steps + r) * count);
  }
  return z;
}

}  // namespace

void bind_allen_cahn(py::module_& m) {
  py::class_<ACConfig>(m, "ACConfig",
                       "Parameters of an Allen-Cahn pCN run (read-only; defaults, ranges and documentation: "
                       "fastinterp.pde.spec.ALLEN_CAHN). The constructor checks only the sampler's invariants.")
      .def(py::init([](long n, const std::string& boundary, const std::string& potential, double mass,
                       double target_accept) {
             ACConfig c;
             c.n = n;
             if (boundary != "free" && boundary != "pinned")
               throw std::invalid_argument("ACConfig: boundary must be 'free' or 'pinned', got '" + boundary + "'");
             if (potential != "double_well" && potential != "none")
               throw std::invalid_argument("ACConfig: potential must be 'double_well' or 'none', got '" + potential +
                                           "'");
             c.pinned = boundary == "pinned";
             c.vscale = potential == "double_well" ? 1.0 : 0.0;
             c.mass = mass;
             c.target_accept = target_accept;
             c.validate();
             return c;
           }),
           py::kw_only(), py::arg("n"), py::arg("boundary"), py::arg("potential"), py::arg("mass"),
           py::arg("target_accept"))
      .def_readonly("n", &ACConfig::n)
      .def_property_readonly("boundary", &ACConfig::boundary_name)
      .def_property_readonly("potential", &ACConfig::potential_name)
      .def_readonly("mass", &ACConfig::mass)
      .def_readonly("target_accept", &ACConfig::target_accept)
      .def_property_readonly("dof", [](const ACConfig& c) { return c.pinned ? c.n - 1 : c.n + 1; })
      .def("__repr__", [](const ACConfig& c) {
        return "ACConfig(n=" + std::to_string(c.n) + ", boundary='" + c.boundary_name() + "', potential='" +
               c.potential_name() + "', mass=" + pde::num_str(c.mass) + ", target_accept=" +
               pde::num_str(c.target_accept) + ")";
      });
  m.def("ac_mcmc_run", &mcmc_run, py::arg("u"), py::arg("theta"), py::arg("config"), py::kw_only(), py::arg("seed"),
        py::arg("first"), py::arg("step0"), py::arg("steps"), py::arg("adapt_until"), py::arg("thin"),
        py::arg("z") = py::none(), py::arg("unif") = py::none(), py::arg("threads") = 1, py::arg("dtype") = "float64",
        "pCN chains of the discrete Allen-Cahn Gibbs measure exp(-U) with the parameters `config` (an ACConfig) "
        "from u (chains, n+1) and theta = logit(beta) "
        "(chains,): `steps` steps numbered step0.., theta adapted while step < adapt_until, a sample recorded every "
        "`thin` steps (toward config.target_accept). Returns (u, theta, samples (chains, steps // thin, n+1), accepted (chains,) int64, "
        "sum of acceptance probabilities (chains,)). z (chains, steps, dof) and unif (chains, steps) inject the "
        "proposal normals and accept uniforms. dtype ('float64' or 'float32') is the dtype of the recorded samples "
        "only: the chain itself always runs in float64.");
  m.def("ac_mcmc_init", &mcmc_init, py::arg("num"), py::arg("config"), py::kw_only(), py::arg("seed"),
        py::arg("first") = 0,
        "Initial pCN states (num, n+1) of `config` (an ACConfig): draws from the reference N(0, (A + m W)^{-1}), "
        "chain i keyed by (seed, first+i).");
  m.def("ac_mcmc_noise", &mcmc_noise, py::arg("seed"), py::arg("first"), py::arg("num"), py::arg("step0"),
        py::arg("steps"), py::arg("dof"),
        "The proposal normals (num, steps, dof) and accept uniforms (num, steps) that ac_mcmc_run draws.");
  m.def(
      "ac_mcmc_factor",
      [](const ACConfig& cfg) {
        const Gibbs1D g = cfg.gibbs();
        py::array_t<double> r(g.dof), s(g.dof - 1 > 0 ? g.dof - 1 : 0);
        std::copy(g.r.begin(), g.r.end(), r.mutable_data());
        std::copy(g.s.begin(), g.s.end(), s.mutable_data());
        return py::make_tuple(r, s);
      },
      py::arg("config"),
      "The bidiagonal Cholesky factor R (diagonal, superdiagonal) of the pCN reference precision A + m W of "
      "`config` (an ACConfig).");
  m.def("ac_spde_run", &spde_run, py::arg("state"), py::kw_only(), py::arg("phi"), py::arg("transform"),
        py::arg("boundary"), py::arg("weights"), py::arg("mu"),
        py::arg("dim"), py::arg("midpoint"), py::arg("vscale"), py::arg("dt"), py::arg("burn"), py::arg("every") = 1,
        py::arg("snapshots") = 0, py::arg("step0") = 0, py::arg("seed") = 0, py::arg("first") = 0,
        py::arg("noise") = py::none(), py::arg("threads") = 1,
        "Exponential Euler-Maruyama for the Allen-Cahn gradient flow in modal coordinates: state (num, modes) or "
        "(num, modes, modes), float64 or float32 (which picks the arithmetic); weights (nodes,), mu (modes,) the "
        "eigenvalues of the W-orthonormal eigenbasis, applied as the dense phi (nodes, modes) (transform='dense') "
        "or by FFT (transform='fft', phi=None: the basis of `boundary`, free/pinned/periodic, power-of-two n). Runs "
        "burn + (snapshots-1)*every steps, nodal snapshot s after burn + s*every steps. Returns (final state, "
        "snapshots), in the state's dtype. noise (num, steps, modes^dim) float64 injects the standard normals.");
  m.def(
      "ac_modal_fft",
      [](const py::object& x_obj, const std::string& boundary, long n, int dim, bool synth) -> py::array {
        if (dim != 1 && dim != 2) throw py::value_error("dim must be 1 or 2, got " + std::to_string(dim));
        const Basis b = parse_basis(boundary);
        check_fft_basis(b, n, boundary);
        if (state_is_single(x_obj, "x"))
          return modal_fft_impl<float>(pde::checked_array<float>(x_obj, "x", dim + 1, dim + 1), b, n, dim, synth);
        return modal_fft_impl<double>(pde::checked_array<double>(x_obj, "x", dim + 1, dim + 1), b, n, dim, synth);
      },
      py::arg("x"), py::kw_only(), py::arg("boundary"), py::arg("n"), py::arg("dim"), py::arg("synth"),
      "The SPDE's FFT modal transforms of modal_basis(n, boundary) on each of `dim` axes: synth=True maps modal a "
      "(batch, modes[, modes]) to nodal Phi a [Phi^T]; synth=False maps nodal g (batch, nodes[, nodes]) to "
      "Phi^T g [Phi] (no weights). float32 or float64.");
  m.def("ac_fft_supported", [](long n, const std::string& boundary) {
        return allen_cahn::fft_supported(parse_basis(boundary), n);
      }, py::arg("n"), py::arg("boundary"), "Whether the FFT modal transforms handle modal_basis(n, boundary).");
  m.def("ac_spde_noise", &spde_noise, py::arg("seed"), py::arg("first"), py::arg("num"), py::arg("step0"),
        py::arg("steps"), py::arg("count"), py::arg("init") = false,
        "The standard normals (num, steps, count) of ac_spde_run (init=True: of the initial state, step 0).");
}
