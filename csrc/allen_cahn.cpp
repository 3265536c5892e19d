// csrc/allen_cahn.cpp -- bindings of the stochastic Allen-Cahn samplers (csrc/allen_cahn.hpp): pCN chains of the
// discrete Gibbs measure and the exponential Euler-Maruyama SPDE. One chain / trajectory per work item, any thread
// count gives the same bits (randomness keyed by (seed, chain, step)); the GIL is released while they run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "allen_cahn.hpp"
#include "pde_common.hpp"
#include "rng.hpp"

namespace py = pybind11;
using namespace fastinterp;
using allen_cahn::Gibbs1D;
using allen_cahn::PcnChain;
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

Gibbs1D make_gibbs(long n, bool pinned, double vscale, double mass) {
  if (n < 2 || n > (1L << 20)) throw py::value_error("n must be in [2, 2^20], got " + std::to_string(n));
  pde::require_finite(vscale, "vscale");
  pde::require_finite(mass, "mass");
  if (vscale < 0) throw py::value_error("vscale must be >= 0, got " + std::to_string(vscale));
  if (pinned ? mass < 0 : mass <= 0)
    throw py::value_error(std::string("mass must be ") + (pinned ? ">= 0" : "> 0 with free ends (the zero mode)") +
                          ", got " + std::to_string(mass));
  return Gibbs1D(n, pinned, vscale, mass);
}

template <class F>
void for_each_item(long num, int threads, F&& body) {
  std::atomic<long> next{0};
  pde::parallel_workers(std::min<long>(threads, std::max<long>(num, 1)), [&](int) {
    for (long i; (i = next.fetch_add(1)) < num;) body(i);
  });
}

py::tuple mcmc_run(const py::object& u_obj, const py::object& theta_obj, long n, bool pinned, double vscale,
                   double mass, uint64_t seed, uint64_t first, long step0, long steps, long adapt_until, double target,
                   long thin, const py::object& z_obj, const py::object& unif_obj, long threads) {
  const Gibbs1D g = make_gibbs(n, pinned, vscale, mass);
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
  pde::require_finite(target, "target_accept");
  if (!(target > 0 && target < 1)) throw py::value_error("target_accept must be in (0, 1), got " + std::to_string(target));
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
  py::array_t<double> u_out({num, nn}), theta_out(num), samples({num, ns, nn});
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
  double* so = samples.mutable_data();
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
        if ((r + 1) % thin == 0) std::copy(ch.u, ch.u + nn, so + (c * ns + (r + 1) / thin - 1) * nn);
      }
      to[c] = ch.theta;
      ao[c] = acc;
      as[c] = asum;
    });
  }
  return py::make_tuple(u_out, theta_out, samples, accepted, alpha_sum);
}

py::array_t<double> mcmc_init(long num, long n, bool pinned, double mass, uint64_t seed, uint64_t first) {
  const Gibbs1D g = make_gibbs(n, pinned, 1.0, mass);
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

py::tuple spde_run(const py::object& a_obj, const py::object& phi_obj, const py::object& w_obj,
                   const py::object& mu_obj, int dim, bool midpoint, double vscale, double dt, long burn, long every,
                   long snapshots, long step0, uint64_t seed, uint64_t first, const py::object& noise_obj,
                   long threads) {
  if (dim != 1 && dim != 2) throw py::value_error("dim must be 1 or 2, got " + std::to_string(dim));
  pde::require_finite(dt, "dt");
  pde::require_finite(vscale, "vscale");
  if (dt <= 0) throw py::value_error("dt must be > 0, got " + std::to_string(dt));
  if (vscale < 0) throw py::value_error("vscale must be >= 0, got " + std::to_string(vscale));
  if (burn < 0 || every < 1 || snapshots < 0)
    throw py::value_error("need burn >= 0, every >= 1, snapshots >= 0; got burn=" + std::to_string(burn) +
                          ", every=" + std::to_string(every) + ", snapshots=" + std::to_string(snapshots));
  const py::array phia = pde::checked_array<double>(phi_obj, "phi", 2, 2);
  const py::array wa = pde::checked_array<double>(w_obj, "weights", 1, 1);
  const py::array mua = pde::checked_array<double>(mu_obj, "mu", 1, 1);
  Spde sp;
  sp.dim = dim;
  sp.nodes = phia.shape(0);
  sp.modes = phia.shape(1);
  if (sp.nodes < 2 || sp.modes < 1 || sp.modes > sp.nodes)
    throw py::value_error("phi must have shape (nodes, modes) with nodes >= 2 and 1 <= modes <= nodes, got " +
                          pde::shape_str(phia));
  if (wa.shape(0) != sp.nodes || mua.shape(0) != sp.modes)
    throw py::value_error("weights must have shape (nodes,) and mu (modes,), got " + pde::shape_str(wa) + " and " +
                          pde::shape_str(mua));
  if (dim == 1 && midpoint && sp.nodes < 2) throw py::value_error("midpoint potential needs >= 2 nodes");
  sp.midpoint = midpoint;
  sp.vscale = vscale;
  sp.h = 1.0 / static_cast<double>(sp.nodes - 1);  // 1-D midpoint form: nodes = N + 1
  const double* phip = static_cast<const double*>(phia.data());
  sp.phi.assign(phip, phip + sp.nodes * sp.modes);
  sp.phit.resize(sp.nodes * sp.modes);
  for (long j = 0; j < sp.nodes; ++j)
    for (long k = 0; k < sp.modes; ++k) sp.phit[k * sp.nodes + j] = sp.phi[j * sp.modes + k];
  const double* wp = static_cast<const double*>(wa.data());
  sp.w.assign(wp, wp + sp.nodes);
  const double* mup = static_cast<const double*>(mua.data());
  for (long k = 0; k < sp.modes; ++k)
    if (!std::isfinite(mup[k]) || mup[k] < 0) throw py::value_error("mu must be finite and >= 0");
  for (double v : sp.phi)
    if (!std::isfinite(v)) throw py::value_error("phi must be finite");
  for (double v : sp.w)
    if (!std::isfinite(v) || v < 0) throw py::value_error("weights must be finite and >= 0");
  const long M = sp.total_modes(), Nn = sp.total_nodes();
  sp.ea.resize(M);
  sp.ca.resize(M);
  sp.sa.resize(M);
  for (long i = 0; i < M; ++i) {
    const double mu = dim == 2 ? mup[i / sp.modes] + mup[i % sp.modes] : mup[i];
    if (mu == 0.0) {
      sp.ea[i] = 1.0;
      sp.ca[i] = dt;
      sp.sa[i] = std::sqrt(2.0 * dt);
    } else {
      sp.ea[i] = std::exp(-mu * dt);
      sp.ca[i] = -std::expm1(-mu * dt) / mu;
      sp.sa[i] = std::sqrt(-std::expm1(-2.0 * mu * dt) / mu);
    }
  }
  const py::array aa = pde::checked_array<double>(a_obj, "state", dim + 1, dim + 1);
  const long num = aa.shape(0);
  if (aa.shape(1) != sp.modes || (dim == 2 && aa.shape(2) != sp.modes))
    throw py::value_error("state must have shape (num" + std::string(dim == 2 ? ", modes, modes" : ", modes") +
                          ") with modes = " + std::to_string(sp.modes) + ", got " + pde::shape_str(aa));
  const long total = snapshots > 0 ? burn + (snapshots - 1) * every : burn;
  check_indices(first, num, step0, total);
  std::optional<py::array> na;
  if (!noise_obj.is_none()) {
    na = pde::checked_array<double>(noise_obj, "noise", 3, 3);
    if (na->shape(0) != num || na->shape(1) != total || na->shape(2) != M)
      throw py::value_error("noise must have shape (num, steps, modes^dim) = (" + std::to_string(num) + ", " +
                            std::to_string(total) + ", " + std::to_string(M) + "), got " + pde::shape_str(*na));
  }
  const double* a_in = static_cast<const double*>(aa.data());
  for (long i = 0; i < num * M; ++i)
    if (!std::isfinite(a_in[i])) throw py::value_error("state must be finite");
  const int th = pde::resolve_threads(threads);
  std::vector<py::ssize_t> ashape{num, sp.modes}, sshape{num, snapshots, sp.nodes};
  if (dim == 2) {
    ashape.push_back(sp.modes);
    sshape.push_back(sp.nodes);
  }
  py::array_t<double> a_out(ashape), snaps(sshape);
  double* ao = a_out.mutable_data();
  double* so = snaps.mutable_data();
  std::copy(a_in, a_in + num * M, ao);
  const double* np_ = na ? static_cast<const double*>(na->data()) : nullptr;
  {
    py::gil_scoped_release nogil;
    for_each_item(num, th, [&](long c) {
      double* a = ao + c * M;
      std::vector<double> u(Nn), g(Nn), G(M), z(M), tmp(sp.modes * sp.nodes);
      const uint64_t traj = first + static_cast<uint64_t>(c);
      long taken = 0;
      auto snap = [&](long done) {
        if (taken < snapshots && done == burn + taken * every) {
          sp.synth(a, so + (c * snapshots + taken) * Nn, tmp.data());
          ++taken;
        }
      };
      snap(0);
      for (long r = 0; r < total; ++r) {
        const double* zz;
        if (np_) {
          zz = np_ + (c * total + r) * M;
        } else {
          rng::Stream{seed, allen_cahn::kTagSpde, traj, static_cast<uint64_t>(step0 + r)}.fill(0, M, z.data());
          zz = z.data();
        }
        if (sp.vscale != 0.0) {
          sp.synth(a, u.data(), tmp.data());
          sp.grad_psi(u.data(), g.data());
          sp.analyse(g.data(), G.data(), tmp.data());
          for (long i = 0; i < M; ++i) a[i] = sp.ea[i] * a[i] - sp.ca[i] * G[i] + sp.sa[i] * zz[i];
        } else {
          for (long i = 0; i < M; ++i) a[i] = sp.ea[i] * a[i] + sp.sa[i] * zz[i];
        }
        snap(r + 1);
      }
    });
  }
  return py::make_tuple(a_out, snaps);
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
  m.def("ac_mcmc_run", &mcmc_run, py::arg("u"), py::arg("theta"), py::kw_only(), py::arg("n"), py::arg("pinned"),
        py::arg("vscale"), py::arg("mass"), py::arg("seed"), py::arg("first"), py::arg("step0"), py::arg("steps"),
        py::arg("adapt_until"), py::arg("target_accept"), py::arg("thin"), py::arg("z") = py::none(),
        py::arg("unif") = py::none(), py::arg("threads") = 1,
        "pCN chains of the discrete Allen-Cahn Gibbs measure exp(-U) from u (chains, n+1) and theta = logit(beta) "
        "(chains,): `steps` steps numbered step0.., theta adapted while step < adapt_until, a sample recorded every "
        "`thin` steps. Returns (u, theta, samples (chains, steps // thin, n+1), accepted (chains,) int64, "
        "sum of acceptance probabilities (chains,)). z (chains, steps, dof) and unif (chains, steps) inject the "
        "proposal normals and accept uniforms.");
  m.def("ac_mcmc_init", &mcmc_init, py::arg("num"), py::kw_only(), py::arg("n"), py::arg("pinned"), py::arg("mass"),
        py::arg("seed"), py::arg("first") = 0,
        "Initial pCN states (num, n+1): draws from the reference N(0, (A + m W)^{-1}), chain i keyed by (seed, first+i).");
  m.def("ac_mcmc_noise", &mcmc_noise, py::arg("seed"), py::arg("first"), py::arg("num"), py::arg("step0"),
        py::arg("steps"), py::arg("dof"),
        "The proposal normals (num, steps, dof) and accept uniforms (num, steps) that ac_mcmc_run draws.");
  m.def(
      "ac_mcmc_factor",
      [](long n, bool pinned, double mass) {
        const Gibbs1D g = make_gibbs(n, pinned, 1.0, mass);
        py::array_t<double> r(g.dof), s(g.dof - 1 > 0 ? g.dof - 1 : 0);
        std::copy(g.r.begin(), g.r.end(), r.mutable_data());
        std::copy(g.s.begin(), g.s.end(), s.mutable_data());
        return py::make_tuple(r, s);
      },
      py::arg("n"), py::arg("pinned"), py::arg("mass"),
      "The bidiagonal Cholesky factor R (diagonal, superdiagonal) of the pCN reference precision A + m W.");
  m.def("ac_spde_run", &spde_run, py::arg("state"), py::kw_only(), py::arg("phi"), py::arg("weights"), py::arg("mu"),
        py::arg("dim"), py::arg("midpoint"), py::arg("vscale"), py::arg("dt"), py::arg("burn"), py::arg("every") = 1,
        py::arg("snapshots") = 0, py::arg("step0") = 0, py::arg("seed") = 0, py::arg("first") = 0,
        py::arg("noise") = py::none(), py::arg("threads") = 1,
        "Exponential Euler-Maruyama for the Allen-Cahn gradient flow in modal coordinates: state (num, modes) or "
        "(num, modes, modes); phi (nodes, modes) the W-orthonormal eigenbasis, weights (nodes,), mu (modes,) its "
        "eigenvalues. Runs burn + (snapshots-1)*every steps, nodal snapshot s after burn + s*every steps. Returns "
        "(final state, snapshots). noise (num, steps, modes^dim) injects the standard normals.");
  m.def("ac_spde_noise", &spde_noise, py::arg("seed"), py::arg("first"), py::arg("num"), py::arg("step0"),
        py::arg("steps"), py::arg("count"), py::arg("init") = false,
        "The standard normals (num, steps, count) of ac_spde_run (init=True: of the initial state, step 0).");
}
