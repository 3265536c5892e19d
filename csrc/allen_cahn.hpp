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
// exp(-U): the linear part (and for V = 0 the whole step) is exact, Psi's drift is O(dt). The tables W, mu (and, on
// the dense path, Phi) are built by fastinterp/pde/allen_cahn.py and passed in, so the C++ path and the torch twin
// share them; the FFT path (FftModes below) applies the same Phi by DCT-I / DST-I / real Fourier transforms. The
// step runs in T = float or double (Spde<T>); tables are computed in double and rounded once.
//
// pCN always runs in double (state, proposal, Phi, accept ratio): a float32 request only rounds the recorded samples,
// so exp(-U) stays the exact invariant law.
//
// Randomness: rng::Stream (csrc/rng.hpp) keyed by (seed, tag, chain, step); tags below.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fft.hpp"
#include "rng.hpp"

// The dense modal transforms get an AVX2 clone, deliberately without FMA (and without AVX-512F, which carries it):
// every element is then computed by the same IEEE multiply and add on every x86-64 machine, so a seed gives the same
// bits everywhere (an FMA clone would round differently from the SSE2 baseline). The FFT path does NOT keep this:
// csrc/fft.hpp's own clones (x86-64-v4 / v3 with FMA / baseline) make its bits depend on the x86-64 level (never on
// the thread count); transform="dense" is the choice when bits must match across machines.
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
template <class T>
inline T dV(T u) {
  return T(4) * u * (u * u - T(1));
}

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

// The SPDE's exponential Euler-Maruyama step on a tensor-product modal basis (dim 1 or 2), in T = float or double.
// Tables are computed in double by the caller and rounded to T once; the step itself runs in T.
template <class T>
struct Spde {
  int dim = 1;
  long nodes = 0, modes = 0;  // per axis
  std::vector<T> phi, phit;  // dense path: phi[j * modes + k] = phi_k(x_j); phit its transpose (empty on the FFT path)
  std::vector<T> w;          // node weights (per axis)
  std::vector<T> ea, ca, sa;  // per mode (modes^dim): e^{-mu dt}, (1 - e^{-mu dt})/mu, sqrt((1-e^{-2 mu dt})/mu)
  bool midpoint = true;  // 1-D: Psi = (h/2) sum V(midpoints); else Psi = (1/2) sum_nodes W V(u)
  T vscale = 1, h = 0;

  long total_modes() const { return dim == 2 ? modes * modes : modes; }
  long total_nodes() const { return dim == 2 ? nodes * nodes : nodes; }

  // Dense reference transforms. u = Phi a (1-D) or Phi a Phi^T (2-D); tmp: modes * nodes scratch.
  FASTINTERP_AC_CLONES void synth(const T* a, T* u, T* tmp) const {
    if (dim == 1) {  // axpy form (vectorises without reassociating a reduction)
      std::fill(u, u + nodes, T(0));
      for (long k = 0; k < modes; ++k) {
        const T ak = a[k];
        const T* col = &phit[k * nodes];
        for (long j = 0; j < nodes; ++j) u[j] += ak * col[j];
      }
      return;
    }
    // tmp[k, j] = sum_l a[k, l] phi[j, l] = (a Phi^T)[k, j]
    for (long k = 0; k < modes; ++k) {
      T* t = tmp + k * nodes;
      std::fill(t, t + nodes, T(0));
      for (long l = 0; l < modes; ++l) {
        const T akl = a[k * modes + l];
        const T* pt = &phit[l * nodes];
        for (long j = 0; j < nodes; ++j) t[j] += akl * pt[j];
      }
    }
    // u[i, j] = sum_k phi[i, k] tmp[k, j]
    for (long i = 0; i < nodes; ++i) {
      T* ui = u + i * nodes;
      std::fill(ui, ui + nodes, T(0));
      for (long k = 0; k < modes; ++k) {
        const T p = phi[i * modes + k];
        const T* t = tmp + k * nodes;
        for (long j = 0; j < nodes; ++j) ui[j] += p * t[j];
      }
    }
  }
  // G = Phi^T g (1-D) or Phi^T g Phi (2-D); tmp: nodes * modes scratch.
  FASTINTERP_AC_CLONES void analyse(const T* g, T* G, T* tmp) const {
    if (dim == 1) {
      std::fill(G, G + modes, T(0));
      for (long j = 0; j < nodes; ++j) {
        const T gj = g[j];
        const T* row = &phi[j * modes];
        for (long k = 0; k < modes; ++k) G[k] += row[k] * gj;
      }
      return;
    }
    // tmp[i, l] = sum_j g[i, j] phi[j, l]
    for (long i = 0; i < nodes; ++i) {
      T* t = tmp + i * modes;
      std::fill(t, t + modes, T(0));
      for (long j = 0; j < nodes; ++j) {
        const T gij = g[i * nodes + j];
        const T* row = &phi[j * modes];
        for (long l = 0; l < modes; ++l) t[l] += gij * row[l];
      }
    }
    // G[k, l] = sum_i phi[i, k] tmp[i, l]
    std::fill(G, G + modes * modes, T(0));
    for (long i = 0; i < nodes; ++i) {
      const T* t = tmp + i * modes;
      for (long k = 0; k < modes; ++k) {
        const T p = phi[i * modes + k];
        T* Gk = G + k * modes;
        for (long l = 0; l < modes; ++l) Gk[l] += p * t[l];
      }
    }
  }
  // grad Psi at nodal u (total_nodes) into g.
  void grad_psi(const T* u, T* g) const {
    if (dim == 1 && midpoint) {
      const long n = nodes - 1;
      std::fill(g, g + nodes, T(0));
      const T c = T(0.25) * h * vscale;
      for (long j = 0; j < n; ++j) {
        const T d = c * dV(T(0.5) * (u[j] + u[j + 1]));
        g[j] += d;
        g[j + 1] += d;
      }
      return;
    }
    if (dim == 1) {
      for (long j = 0; j < nodes; ++j) g[j] = T(0.5) * vscale * w[j] * dV(u[j]);
      return;
    }
    for (long i = 0; i < nodes; ++i)
      for (long j = 0; j < nodes; ++j) g[i * nodes + j] = T(0.5) * vscale * w[i] * w[j] * dV(u[i * nodes + j]);
  }
};

// ---- FFT modal transforms ----
//
// The three bases of fastinterp/pde/allen_cahn.py:modal_basis applied with csrc/fft.hpp's real FFT instead of the
// dense matrices, O(n log n) per axis instead of O(n^2). With n intervals, h = 1/n:
//   free     (n+1 nodes, n+1 modes): phi_k(j) = c_k cos(pi k j / n), c_0 = c_n = 1, else sqrt 2. The DCT-I
//            D(x)_k = sum_{j=0..n} x_j cos(pi j k / n) is Re FFT_{2n}(y) of the even extension y_0 = x_0, y_n = x_n,
//            y_j = y_{2n-j} = x_j / 2; synth u = D(c a), analyse G = c D(g) (D is symmetric).
//   pinned   (n+1 nodes, n-1 modes k = 1..n-1): phi_k(j) = sqrt 2 sin(pi k j / n). The DST-I on the interior,
//            S(x)_j = sum_k x_k sin(pi k j / n) = -Im FFT_{2n}(y) / 2 of the odd extension y_k = x_k,
//            y_{2n-k} = -x_k, y_0 = y_n = 0; the sqrt 2 is folded into the extension (x_k / sqrt 2 instead of x_k / 2).
//   periodic (n nodes and modes): 1, sqrt 2 cos(2 pi f j / n), sqrt 2 sin(2 pi f j / n) (f = 1..n/2-1, modes 2f-1
//            and 2f), (-1)^j. Analyse: the r2c spectrum X_f gives G_{2f-1} = sqrt 2 Re X_f, G_{2f} = -sqrt 2 Im X_f;
//            synth: the inverse (unnormalised c2r) of X_f = (a_{2f-1} - i a_{2f}) / sqrt 2, X_0 = a_0,
//            X_{n/2} = a_{n-1}.
// The FFT (size 2n, or n periodic) must be a power of two >= 4 (fft::check_size). 2-D: the 1-D transform on all
// rows, a transpose, the rows again, a transpose back. A plan owns scratch: one FftModes per worker thread.
enum class Basis { free, pinned, periodic };

inline long fft_size(Basis b, long n) { return b == Basis::periodic ? n : 2 * n; }
inline bool fft_supported(Basis b, long n) {
  const long s = fft_size(b, n);
  return s >= 4 && s <= (1L << 24) && fft::is_pow2(s);
}
inline long basis_nodes(Basis b, long n) { return b == Basis::periodic ? n : n + 1; }
inline long basis_modes(Basis b, long n) { return b == Basis::free ? n + 1 : (b == Basis::pinned ? n - 1 : n); }

template <class T>
class FftModes {
 public:
  // max_rows: the largest batch of rows one call transforms (1 in 1-D, nodes in 2-D)
  FftModes(Basis b, long n, int dim, long max_rows)
      : b_(b), n_(n), dim_(dim), size_(fft_size(b, n)), half_(size_ / 2 + 1), nodes_(basis_nodes(b, n)),
        modes_(basis_modes(b, n)), plan_(size_, fft::Backend::builtin) {
    // Backend::builtin, not the process default: the bits must not depend on set_default_backend
    ext_.assign(max_rows * size_, T(0));
    re_.assign(max_rows * half_, T(0));
    im_.assign(max_rows * half_, T(0));
    if (dim == 2) {
      t1_.assign(nodes_ * nodes_, T(0));
      t2_.assign(nodes_ * nodes_, T(0));
    }
  }
  long nodes() const { return nodes_; }
  long modes() const { return modes_; }

  // u = Phi a (1-D: a (modes,), u (nodes,)) or Phi a Phi^T (2-D: a (modes, modes), u (nodes, nodes)).
  void synth(const T* a, T* u) {
    if (dim_ == 1) return synth_rows(a, 1, u);
    transpose(a, modes_, modes_, t1_.data());        // a^T
    synth_rows(t1_.data(), modes_, t2_.data());      // a^T Phi^T        (modes x nodes)
    transpose(t2_.data(), modes_, nodes_, t1_.data());  // Phi a         (nodes x modes)
    synth_rows(t1_.data(), nodes_, u);               // Phi a Phi^T      (nodes x nodes)
  }
  // G = Phi^T g (1-D) or Phi^T g Phi (2-D).
  void analyse(const T* g, T* G) {
    if (dim_ == 1) return analyse_rows(g, 1, G);
    transpose(g, nodes_, nodes_, t1_.data());          // g^T
    analyse_rows(t1_.data(), nodes_, t2_.data());      // g^T Phi        (nodes x modes)
    transpose(t2_.data(), nodes_, modes_, t1_.data());  // Phi^T g      (modes x nodes)
    analyse_rows(t1_.data(), modes_, G);               // Phi^T g Phi    (modes x modes)
  }

  // Row by row: a (rows, modes) -> u (rows, nodes), u_r = Phi a_r.
  void synth_rows(const T* a, long rows, T* u) {
    const long n = n_, S = size_, H = half_;
    const T r2 = static_cast<T>(std::sqrt(0.5));  // 1/sqrt 2, rounded once
    if (b_ == Basis::periodic) {
      for (long r = 0; r < rows; ++r) {
        const T* ar = a + r * modes_;
        T* re = re_.data() + r * H;
        T* im = im_.data() + r * H;
        re[0] = ar[0];
        im[0] = T(0);
        for (long f = 1; f < n / 2; ++f) {
          re[f] = ar[2 * f - 1] * r2;
          im[f] = -(ar[2 * f] * r2);
        }
        re[n / 2] = ar[n - 1];
        im[n / 2] = T(0);
      }
      plan_.inverse(re_.data(), im_.data(), H, u, nodes_, rows);
      return;
    }
    for (long r = 0; r < rows; ++r) {
      const T* ar = a + r * modes_;
      T* y = ext_.data() + r * S;
      if (b_ == Basis::free) {  // y_k = y_{2n-k} = c_k a_k / 2 = a_k / sqrt 2
        y[0] = ar[0];
        y[n] = ar[n];
        for (long k = 1; k < n; ++k) y[k] = y[S - k] = ar[k] * r2;
      } else {  // pinned: a[k - 1] is mode k; y_k = -y_{2n-k} = sqrt 2 a_k / 2
        y[0] = y[n] = T(0);
        for (long k = 1; k < n; ++k) {
          const T v = ar[k - 1] * r2;
          y[k] = v;
          y[S - k] = -v;
        }
      }
    }
    plan_.forward(ext_.data(), S, re_.data(), im_.data(), H, rows);
    for (long r = 0; r < rows; ++r) {
      T* ur = u + r * nodes_;
      const T* re = re_.data() + r * H;
      const T* im = im_.data() + r * H;
      if (b_ == Basis::free) {
        for (long j = 0; j <= n; ++j) ur[j] = re[j];
      } else {
        ur[0] = ur[n] = T(0);
        for (long j = 1; j < n; ++j) ur[j] = -im[j];
      }
    }
  }
  // Row by row: g (rows, nodes) -> G (rows, modes), G_r = Phi^T g_r.
  void analyse_rows(const T* g, long rows, T* G) {
    const long n = n_, S = size_, H = half_;
    const T r2 = static_cast<T>(std::sqrt(0.5)), s2 = static_cast<T>(std::sqrt(2.0));
    if (b_ == Basis::periodic) {
      plan_.forward(g, nodes_, re_.data(), im_.data(), H, rows);
      for (long r = 0; r < rows; ++r) {
        T* Gr = G + r * modes_;
        const T* re = re_.data() + r * H;
        const T* im = im_.data() + r * H;
        Gr[0] = re[0];
        for (long f = 1; f < n / 2; ++f) {
          Gr[2 * f - 1] = s2 * re[f];
          Gr[2 * f] = -(s2 * im[f]);
        }
        Gr[n - 1] = re[n / 2];
      }
      return;
    }
    for (long r = 0; r < rows; ++r) {
      const T* gr = g + r * nodes_;
      T* y = ext_.data() + r * S;
      if (b_ == Basis::free) {  // the even extension of g; G = c D(g)
        y[0] = gr[0];
        y[n] = gr[n];
        for (long j = 1; j < n; ++j) y[j] = y[S - j] = T(0.5) * gr[j];
      } else {  // odd extension of the interior, sqrt 2 folded in; phi vanishes at the pinned nodes
        y[0] = y[n] = T(0);
        for (long j = 1; j < n; ++j) {
          const T v = gr[j] * r2;
          y[j] = v;
          y[S - j] = -v;
        }
      }
    }
    plan_.forward(ext_.data(), S, re_.data(), im_.data(), H, rows);
    for (long r = 0; r < rows; ++r) {
      T* Gr = G + r * modes_;
      const T* re = re_.data() + r * H;
      const T* im = im_.data() + r * H;
      if (b_ == Basis::free) {
        Gr[0] = re[0];
        Gr[n] = re[n];
        for (long k = 1; k < n; ++k) Gr[k] = s2 * re[k];
      } else {
        for (long k = 1; k < n; ++k) Gr[k - 1] = -im[k];
      }
    }
  }

 private:
  // dst (cols x rows) = src (rows x cols)^T, in 32 x 32 blocks
  static void transpose(const T* src, long rows, long cols, T* dst) {
    constexpr long B = 32;
    for (long i0 = 0; i0 < rows; i0 += B)
      for (long j0 = 0; j0 < cols; j0 += B) {
        const long i1 = std::min(rows, i0 + B), j1 = std::min(cols, j0 + B);
        for (long i = i0; i < i1; ++i)
          for (long j = j0; j < j1; ++j) dst[j * rows + i] = src[i * cols + j];
      }
  }

  Basis b_;
  long n_;
  int dim_;
  long size_, half_, nodes_, modes_;
  fft::RealFFT1D<T> plan_;
  std::vector<T> ext_, re_, im_, t1_, t2_;
};

}  // namespace allen_cahn
}  // namespace fastinterp
