// csrc/allen_cahn.hpp -- stochastic Allen-Cahn: the paper's 1-D discrete Gibbs measure exp(-U) sampled exactly by
// preconditioned Crank-Nicolson (pCN), and the gradient-flow SPDE by exponential Euler-Maruyama in a modal basis.
//
// Discrete energy on N + 1 nodes u_0..u_N, h = 1/N (the paper's, REFERENCE section 6):
//   U(u) = sum_j (u_{j+1} - u_j)^2 / (2h) + (h/2) sum_j V((u_j + u_{j+1})/2),   V(u) = (1 - u^2)^2,
// free ends, or pinned ends u_0 = u_N = 0. Write U = u^T A u / 2 + Psi(u).
//
// pCN (Cotter, Roberts, Stuart & White 2013). Reference Gaussian N(0, P^{-1}), P = A + m W on the free nodes, W the
// trapezoid weights (h/2 at free ends, h inside): P is diagonal in the Laplacian's cosine (free) / sine (pinned)
// eigenbasis, and the mass m > 0 tames the zero mode (the mean) of the free-end Laplacian. The target is
// exp(-Phi) N(0, P^{-1}) with Phi(u) = Psi(u) - (m/2) u^T W u, so the pCN proposal
//   v = sqrt(1 - beta^2) u + beta xi,   xi ~ N(0, P^{-1}),
// accepted with probability min(1, exp(Phi(u) - Phi(v))) leaves exp(-U) invariant exactly. xi = R^{-1} z with
// P = R^T R the tridiagonal (bidiagonal-factor) Cholesky: the same law as the eigenbasis map, O(N) per draw.
// beta = sigmoid(theta); during burn-in (step < adapt_until) theta += (step + 1)^(-0.6) (alpha - target) per chain,
// alpha the acceptance probability (Robbins-Monro); afterwards beta is frozen and the chain is time-homogeneous.
//
// SPDE in modal coordinates a (u = Phi a, Phi the W-orthonormal eigenbasis, A Phi = W Phi diag(mu)):
//   a' = e^{-mu dt} a - (1 - e^{-mu dt})/mu * G(u) + sqrt((1 - e^{-2 mu dt})/mu) z,   G = Phi^T grad Psi(u),
// the exponential Euler-Maruyama step of du = -W^{-1} grad U dt + sqrt(2 W^{-1}) dB, whose invariant law is
// exp(-U): the linear part (and for V = 0 the whole step) is exact, Psi's drift is O(dt). The tables Phi, W, mu are
// built by fastinterp/pde/allen_cahn.py and passed in, so the C++ path and the torch twin share them.
//
// Randomness: rng::Stream (csrc/rng.hpp) keyed by (seed, tag, chain, step); tags below.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rng.hpp"

// The dense modal transforms get an AVX2 clone, deliberately without FMA (and without AVX-512F, which carries it):
// every element is then computed by the same IEEE multiply and add on every x86-64 machine, so a seed gives the same
// bits everywhere (an FMA clone would round differently from the SSE2 baseline).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(FASTINTERP_NO_CLONES)
#define FASTINTERP_AC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTINTERP_AC_CLONES
#endif

namespace fastinterp {
namespace allen_cahn {

// Stream tags (csrc/fields.cpp uses 1, csrc/navier_stokes.cpp 2 and 3).
constexpr uint32_t kTagProposal = 16;  // pCN: the normals z of step s of chain c
constexpr uint32_t kTagUniform = 17;   // pCN: the accept uniform of step s of chain c
constexpr uint32_t kTagInit = 18;      // pCN: the initial state (a reference draw) of chain c
constexpr uint32_t kTagSpde = 19;      // SPDE: the modal normals of step s of trajectory c
constexpr uint32_t kTagSpdeInit = 20;  // SPDE: the initial modal state of trajectory c

inline double V(double u) {
  const double a = 1.0 - u * u;
  return a * a;
}
inline double dV(double u) { return 4.0 * u * (u * u - 1.0); }

// Uniform in (0, 1) of step `step` of chain `chain`: the top 53 bits of the first Philox word, centred.
inline double uniform(uint64_t seed, uint64_t chain, uint64_t step) {
  uint64_t w[2];
  rng::Stream{seed, kTagUniform, chain, step}.words(0, 0, w);
  return (static_cast<double>(w[0] >> 11) + 0.5) * rng::kTwo53Inv;
}

inline double sigmoid(double t) { return 1.0 / (1.0 + std::exp(-t)); }

// The discrete Gibbs measure exp(-U) on N + 1 nodes and its pCN reference.
struct Gibbs1D {
  long n = 0;          // intervals N; nodes N + 1
  bool pinned = false;  // u_0 = u_N = 0
  double vscale = 1.0;  // 1: double well, 0: V = 0
  double mass = 1.0;    // m
  double h = 0;
  long lo = 0, dof = 0;  // free nodes lo .. lo + dof - 1
  std::vector<double> w;  // trapezoid weights of all nodes
  std::vector<double> r, s;  // P = R^T R, R upper bidiagonal: diagonal r (dof), superdiagonal s (dof - 1)
  std::vector<double> rinv;  // 1 / r: the back substitution is a latency-bound chain, a multiply beats a divide

  Gibbs1D(long n_, bool pinned_, double vscale_, double mass_) : n(n_), pinned(pinned_), vscale(vscale_), mass(mass_) {
    h = 1.0 / static_cast<double>(n);
    lo = pinned ? 1 : 0;
    dof = pinned ? n - 1 : n + 1;
    w.assign(n + 1, h);
    w[0] = w[n] = pinned ? 0.0 : 0.5 * h;
    r.assign(dof, 0.0);
    s.assign(dof > 0 ? dof - 1 : 0, 0.0);
    const double e = -1.0 / h;
    for (long i = 0; i < dof; ++i) {
      const long j = lo + i;
      const double deg = (j == 0 || j == n) ? 1.0 : 2.0;  // edges at node j (pinned: all free nodes have two)
      double d = deg / h + mass * w[j];
      if (i > 0) d -= s[i - 1] * s[i - 1];
      r[i] = std::sqrt(d);
      if (i + 1 < dof) s[i] = e / r[i];
    }
    rinv.resize(dof);
    for (long i = 0; i < dof; ++i) rinv[i] = 1.0 / r[i];
  }
  long nodes() const { return n + 1; }
  // Phi(u) = (h/2) vscale sum_j V((u_j + u_{j+1})/2) - (m/2) sum_j w_j u_j^2
  double phi(const double* u) const {
    double pv = 0.0, pm = 0.0;
    if (vscale != 0.0)
      for (long j = 0; j < n; ++j) pv += V(0.5 * (u[j] + u[j + 1]));
    for (long j = 0; j <= n; ++j) pm += w[j] * u[j] * u[j];
    return 0.5 * h * vscale * pv - 0.5 * mass * pm;
  }
  // xi = R^{-1} z on the free nodes (z has dof entries), zero on pinned nodes: xi ~ N(0, P^{-1}).
  void reference(const double* z, double* xi) const {
    std::fill(xi, xi + n + 1, 0.0);
    double* x = xi + lo;
    x[dof - 1] = z[dof - 1] * rinv[dof - 1];
    for (long i = dof - 2; i >= 0; --i) x[i] = (z[i] - s[i] * x[i + 1]) * rinv[i];
  }
};

// State of one pCN chain between calls: the position, theta = logit(beta), and the cached Phi(u).
struct PcnChain {
  const Gibbs1D& g;
  double* u;  // n + 1 nodes
  double theta;
  double phi_u;
  std::vector<double> z, xi, v;
  PcnChain(const Gibbs1D& g_, double* u_, double theta_) : g(g_), u(u_), theta(theta_) {
    phi_u = g.phi(u);
    z.resize(g.dof);
    xi.resize(g.n + 1);
    v.resize(g.n + 1);
  }
  // One step with normals zz (dof) and uniform un; returns the acceptance probability; *accepted set.
  double step(const double* zz, double un, uint64_t abs_step, uint64_t adapt_until, double target, bool* accepted) {
    const double beta = sigmoid(theta);
    const double rho = std::sqrt((1.0 - beta) * (1.0 + beta));
    g.reference(zz, xi.data());
    for (long j = 0; j <= g.n; ++j) v[j] = rho * u[j] + beta * xi[j];
    const double phi_v = g.phi(v.data());
    const double log_ratio = phi_u - phi_v;
    const double alpha = log_ratio >= 0.0 ? 1.0 : std::exp(log_ratio);
    *accepted = std::log(un) < log_ratio;
    if (*accepted) {
      std::copy(v.begin(), v.end(), u);
      phi_u = phi_v;
    }
    if (abs_step < adapt_until) {
      theta += std::pow(static_cast<double>(abs_step) + 1.0, -0.6) * (alpha - target);
      theta = std::min(15.0, std::max(-15.0, theta));
    }
    return alpha;
  }
};

// The SPDE's exponential Euler-Maruyama step on a tensor-product modal basis (dim 1 or 2).
struct Spde {
  int dim = 1;
  long nodes = 0, modes = 0;  // per axis
  std::vector<double> phi, phit;  // phi[j * modes + k] = phi_k(x_j); phit its transpose
  std::vector<double> w;          // node weights (per axis)
  std::vector<double> ea, ca, sa;  // per mode (modes^dim): e^{-mu dt}, (1 - e^{-mu dt})/mu, sqrt((1-e^{-2 mu dt})/mu)
  bool midpoint = true;  // 1-D: Psi = (h/2) sum V(midpoints); else Psi = (1/2) sum_nodes W V(u)
  double vscale = 1.0, h = 0.0;

  long total_modes() const { return dim == 2 ? modes * modes : modes; }
  long total_nodes() const { return dim == 2 ? nodes * nodes : nodes; }

  // u = Phi a (1-D) or Phi a Phi^T (2-D); tmp: modes * nodes scratch.
  FASTINTERP_AC_CLONES void synth(const double* a, double* u, double* tmp) const {
    if (dim == 1) {  // axpy form (vectorises without reassociating a reduction)
      std::fill(u, u + nodes, 0.0);
      for (long k = 0; k < modes; ++k) {
        const double ak = a[k];
        const double* col = &phit[k * nodes];
        for (long j = 0; j < nodes; ++j) u[j] += ak * col[j];
      }
      return;
    }
    // tmp[k, j] = sum_l a[k, l] phi[j, l] = (a Phi^T)[k, j]
    for (long k = 0; k < modes; ++k) {
      double* t = tmp + k * nodes;
      std::fill(t, t + nodes, 0.0);
      for (long l = 0; l < modes; ++l) {
        const double akl = a[k * modes + l];
        const double* pt = &phit[l * nodes];
        for (long j = 0; j < nodes; ++j) t[j] += akl * pt[j];
      }
    }
    // u[i, j] = sum_k phi[i, k] tmp[k, j]
    for (long i = 0; i < nodes; ++i) {
      double* ui = u + i * nodes;
      std::fill(ui, ui + nodes, 0.0);
      for (long k = 0; k < modes; ++k) {
        const double p = phi[i * modes + k];
        const double* t = tmp + k * nodes;
        for (long j = 0; j < nodes; ++j) ui[j] += p * t[j];
      }
    }
  }
  // G = Phi^T g (1-D) or Phi^T g Phi (2-D); tmp: nodes * modes scratch.
  FASTINTERP_AC_CLONES void analyse(const double* g, double* G, double* tmp) const {
    if (dim == 1) {
      std::fill(G, G + modes, 0.0);
      for (long j = 0; j < nodes; ++j) {
        const double gj = g[j];
        const double* row = &phi[j * modes];
        for (long k = 0; k < modes; ++k) G[k] += row[k] * gj;
      }
      return;
    }
    // tmp[i, l] = sum_j g[i, j] phi[j, l]
    for (long i = 0; i < nodes; ++i) {
      double* t = tmp + i * modes;
      std::fill(t, t + modes, 0.0);
      for (long j = 0; j < nodes; ++j) {
        const double gij = g[i * nodes + j];
        const double* row = &phi[j * modes];
        for (long l = 0; l < modes; ++l) t[l] += gij * row[l];
      }
    }
    // G[k, l] = sum_i phi[i, k] tmp[i, l]
    std::fill(G, G + modes * modes, 0.0);
    for (long i = 0; i < nodes; ++i) {
      const double* t = tmp + i * modes;
      for (long k = 0; k < modes; ++k) {
        const double p = phi[i * modes + k];
        double* Gk = G + k * modes;
        for (long l = 0; l < modes; ++l) Gk[l] += p * t[l];
      }
    }
  }
  // grad Psi at nodal u (total_nodes) into g.
  void grad_psi(const double* u, double* g) const {
    if (dim == 1 && midpoint) {
      const long n = nodes - 1;
      std::fill(g, g + nodes, 0.0);
      const double c = 0.25 * h * vscale;
      for (long j = 0; j < n; ++j) {
        const double d = c * dV(0.5 * (u[j] + u[j + 1]));
        g[j] += d;
        g[j + 1] += d;
      }
      return;
    }
    if (dim == 1) {
      for (long j = 0; j < nodes; ++j) g[j] = 0.5 * vscale * w[j] * dV(u[j]);
      return;
    }
    for (long i = 0; i < nodes; ++i)
      for (long j = 0; j < nodes; ++j) g[i * nodes + j] = 0.5 * vscale * w[i] * w[j] * dV(u[i * nodes + j]);
  }
};

}  // namespace allen_cahn
}  // namespace fastinterp
