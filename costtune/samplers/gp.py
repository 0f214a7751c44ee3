"""A small exact Gaussian process on the unit cube, in plain numpy/scipy, plus log expected improvement.

Kept apart from the sampler so the maths can be tested on its own. Studies hold tens to a few hundred
finished trials, so dense Cholesky factorisations are both the simplest and the cheapest correct choice.
Inputs are rows of [0, 1]^d; targets are expected to be standardised by the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import lapack

_SQRT5 = math.sqrt(5.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# Bounds in log space. The lengthscale floor stops the fit from explaining every point as its own
# bump (a collapsed model has EI ~ 0 everywhere but at the data); the ceiling marks a dimension unused.
LOG_LENGTHSCALE_BOUNDS = (math.log(0.01), math.log(50.0))
LOG_SIGNAL_BOUNDS = (math.log(0.05), math.log(20.0))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
MEAN_BOUNDS = (-3.0, 3.0)


_BLAS_LOCK = threading.Lock()
# Candidate rows scored per block. Thousands of candidates against a few hundred points make
# megabyte temporaries that the allocator maps fresh (page faults) on every call; (128, n) blocks are
# reused from its free lists, which made scoring about twice as fast.
_BLOCK = 128


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run GP fitting and acquisition with one BLAS thread.

    scipy>=1.15's L-BFGS-B makes a handful of tiny BLAS/LAPACK calls per iteration; with multithreaded
    OpenBLAS each becomes a thread hand-off, several times slower on GP-sized problems and far worse
    on a machine busy with trials (scipy issue 22438). threadpoolctl's limit is process-wide, hence the
    lock: concurrent suggestions take turns instead of restoring each other's settings. Optional:
    without threadpoolctl the model just runs slower.
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with _BLAS_LOCK:
        try:
            limiter: Any = controller.limit(limits=1, user_api="blas")
        except Exception:  # introspecting native libraries is best effort
            limiter = contextlib.nullcontext()
        with limiter:
            yield


_CONTROLLER: list[Any] = []  # the one ThreadpoolController, made on first use (None: unavailable)


def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded native libraries, found once: finding them reads the
    process.s memory map, several milliseconds that every suggestion used to pay. A BLAS loaded after
    the first suggestion (say by a later import of torch) is not limited."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            controller: Any = ThreadpoolController()
        except Exception:  # not installed, or introspection failed: run with the default threads
            controller = None
        with _BLAS_LOCK:
            if not _CONTROLLER:
                _CONTROLLER.append(controller)
    return _CONTROLLER[0]


class GPFitError(ArithmeticError):
    """The kernel matrix could not be factorised or no hyperparameter start gave a finite likelihood."""


def matern52(r: np.ndarray) -> np.ndarray:
    """Unit-variance Matern-5/2 correlation as a function of the scaled distance."""
    s = _SQRT5 * r
    return (1.0 + s + s * s / 3.0) * np.exp(-s)


def _matern52_dr2(r: np.ndarray) -> np.ndarray:
    """d k / d (r^2) of the unit-variance kernel; finite at r = 0 unlike d k / d r."""
    s = _SQRT5 * r
    return -(5.0 / 6.0) * (1.0 + s) * np.exp(-s)


def robust_cholesky(k: np.ndarray, max_tries: int = 6) -> np.ndarray:
    """Lower Cholesky factor, adding growing diagonal jitter when rounding makes ``k`` indefinite."""
    jitter = 0.0
    base = float(np.mean(np.diag(k))) if k.size else 1.0
    eye = np.eye(k.shape[0])
    for _ in range(max_tries):
        try:
            return linalg.cholesky(k + jitter * eye if jitter else k, lower=True, check_finite=True)
        except (linalg.LinAlgError, ValueError):
            jitter = base * 1e-9 if jitter == 0.0 else jitter * 10.0
    raise GPFitError("kernel matrix is not positive definite even with jitter")


@dataclass(frozen=True)
class GPParams:
    """Hyperparameters; everything positive is kept as a log so the optimiser works unconstrained-ish."""

    log_lengthscales: np.ndarray
    log_signal: float
    log_noise: float
    mean: float

    def pack(self) -> np.ndarray:
        return np.concatenate([self.log_lengthscales, [self.log_signal, self.log_noise, self.mean]])

    @classmethod
    def unpack(cls, theta: np.ndarray) -> GPParams:
        return cls(np.array(theta[:-3], dtype=float), float(theta[-3]), float(theta[-2]), float(theta[-1]))

    @property
    def lengthscales(self) -> np.ndarray:
        return np.exp(self.log_lengthscales)


@dataclass(frozen=True)
class LogNormalPrior:
    """Gaussian priors on the log hyperparameters (MAP rather than ML keeps small-data fits sane)."""

    ls_loc: float
    ls_scale: float = 1.0
    signal_loc: float = 0.0
    signal_scale: float = 1.5
    noise_loc: float = math.log(1e-3)
    noise_scale: float = 2.0

    @classmethod
    def for_dims(cls, d: int) -> LogNormalPrior:
        # Longer lengthscales in more dimensions: points are farther apart, so a prior centred on a
        # fixed short lengthscale would make a 6-d model treat every observation as isolated.
        return cls(ls_loc=math.log(0.5) + 0.5 * math.log(max(d, 1)))

    def neg_log_density(self, p: GPParams) -> tuple[float, np.ndarray]:
        """Value and gradient w.r.t. the packed vector (constants dropped)."""
        zl = (p.log_lengthscales - self.ls_loc) / self.ls_scale
        zs = (p.log_signal - self.signal_loc) / self.signal_scale
        zn = (p.log_noise - self.noise_loc) / self.noise_scale
        value = 0.5 * (float(zl @ zl) + zs * zs + zn * zn)
        grad = np.concatenate([zl / self.ls_scale, [zs / self.signal_scale, zn / self.noise_scale, 0.0]])
        return value, grad


class GaussianProcess:
    """Posterior of a constant-mean GP with a Matern-5/2 ARD kernel and Gaussian noise."""

    def __init__(self, x: np.ndarray, y: np.ndarray, params: GPParams, *, refit_mean: bool = False) -> None:
        """``refit_mean``: replace ``params.mean`` by its generalised-least-squares estimate on these
        points (clipped to ``MEAN_BOUNDS``), for hyperparameters fitted on other data."""
        self.x = np.asarray(x, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self._inv_ls = 1.0 / params.lengthscales
        self._signal = math.exp(params.log_signal)
        self._scaled: np.ndarray | None = None  # x / lengthscales and its squared norms, for _kernel
        self._scaled_sq = np.zeros(0)
        k = self._kernel(self.x)  # in place: a 256-point matrix in half the time of matern52
        k.flat[:: len(self.x) + 1] += math.exp(params.log_noise)
        self._chol = robust_cholesky(k)
        self._k = k  # (n, n) kept for the screen's nearest-point variance bounds (``screen.py``)
        if refit_mean and len(self.y):
            kinv_one = linalg.cho_solve((self._chol, True), np.ones(len(self.y)), check_finite=False)
            denom = float(kinv_one.sum())
            if denom > 0 and math.isfinite(denom):
                mean = float(np.clip(kinv_one @ self.y / denom, *MEAN_BOUNDS))
                params = dataclasses.replace(params, mean=mean)
        self.params = params
        self._alpha = linalg.cho_solve((self._chol, True), self.y - params.mean)

    def condition_on(self, x_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """Same hyperparameters, more data: how pending trials are imputed without a refit."""
        return GaussianProcess(np.vstack([self.x, x_new]), np.concatenate([self.y, y_new]), self.params)

    def _train_scaled(self) -> tuple[np.ndarray, np.ndarray]:
        """The training points divided by the lengthscales (n, d) and their squared norms (n,)."""
        if self._scaled is None:
            self._scaled = self.x * self._inv_ls
            self._scaled_sq = (self._scaled * self._scaled).sum(1)
        return self._scaled, self._scaled_sq

    def _sq_dist(self, xs: np.ndarray) -> np.ndarray:
        """(m, n) squared length-scaled distances between ``xs`` and the training points, built in one
        array (|a|^2 - 2 a.b + |b|^2, clipped at 0 against rounding)."""
        scaled, scaled_sq = self._train_scaled()
        a = xs * self._inv_ls
        r = a @ scaled.T
        r *= -2.0
        r += scaled_sq
        r += (a * a).sum(1)[:, None]
        np.maximum(r, 0.0, out=r)
        return r

    def _kernel(self, xs: np.ndarray) -> np.ndarray:
        """(m, n) kernel values between ``xs`` and the training points, written in place: scoring
        thousands of candidates against a few hundred points is memory-bound, and every temporary
        of that shape is a fresh mapping the allocator faults in (two here instead of four; the
        arithmetic is the same, so the values are bit for bit what they were)."""
        r = self._sq_dist(xs)
        np.sqrt(r, out=r)
        s = r
        s *= -_SQRT5
        # (1 + s + s^2 / 3) exp(-s) with s = sqrt(5) r, times the signal variance; here s holds -s
        poly = s * s
        poly *= 1.0 / 3.0
        poly -= s
        poly += 1.0
        poly *= self._signal
        np.exp(s, out=s)
        s *= poly
        return s

    @property
    def signal(self) -> float:
        """Prior variance of the latent function."""
        return self._signal

    @property
    def kernel_matrix(self) -> np.ndarray:
        """(n, n) kernel of the training points, noise on the diagonal included."""
        return self._k

    def cross_kernel(self, xs: np.ndarray) -> np.ndarray:
        """(m, n) kernel between the rows of ``xs`` and the training points."""
        return self._kernel(np.atleast_2d(xs))

    def predict_from_cross(self, ks: np.ndarray, *, with_std: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` given ``cross_kernel(xs)``; without ``with_std`` the std is left empty (0,)."""
        mean = self.params.mean + ks @ self._alpha
        if not with_std:
            return mean, np.zeros(0)
        reduction = np.empty(len(ks))
        for i in range(0, len(ks), _BLOCK):
            v = linalg.solve_triangular(self._chol, ks[i : i + _BLOCK].T, lower=True, check_finite=False)
            reduction[i : i + _BLOCK] = (v * v).sum(0)
        return mean, np.sqrt(np.maximum(self._signal - reduction, 1e-20))

    def predict_mean(self, xs: np.ndarray) -> np.ndarray:
        """Posterior mean only (no triangular solve): what a point estimate needs."""
        xs = np.atleast_2d(xs)
        out = np.empty(len(xs))
        for i in range(0, len(xs), _BLOCK):
            ks = self._kernel(xs[i : i + _BLOCK])
            out[i : i + _BLOCK] = ks @ self._alpha
        return self.params.mean + out

    def predict(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent (noise-free) function."""
        xs = np.atleast_2d(xs)
        mean, reduction = np.empty(len(xs)), np.empty(len(xs))
        for i in range(0, len(xs), _BLOCK):
            ks = self._kernel(xs[i : i + _BLOCK])
            mean[i : i + _BLOCK] = ks @ self._alpha
            v = linalg.solve_triangular(self._chol, ks.T, lower=True, check_finite=False)
            reduction[i : i + _BLOCK] = (v * v).sum(0)
        var = np.maximum(self._signal - reduction, 1e-20)
        return self.params.mean + mean, np.sqrt(var)

    def _grad_rows(self, xs: np.ndarray, dk: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(m, d): row i is sum_j weights[i, j] * d k(xs_i, x_j) / d xs_i, given ``dk`` from ``_cross_with_dk``.

        dk(x, x_j)/dx = signal * dk/d(r^2) * 2 (x - x_j) / l^2, summed without the (m, n, d) tensor:
        sum_j w_ij (x_i - x_j) = x_i * sum_j w_ij - (w @ x)_i.
        """
        w = dk * weights
        return (xs * w.sum(1)[:, None] - w @ self.x) * (self._inv_ls**2)

    def _cross_with_dk(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kernel values, 2 signal dk/d(r^2)), both (m, n), for the gradient paths (a polish's few
        rows, where each numpy call's overhead counts): one exp serves both."""
        r2 = self._sq_dist(xs)
        s = np.sqrt(r2)
        s *= _SQRT5
        e = np.exp(-s)
        e *= self._signal
        # k = signal (1 + s + s^2 / 3) e^-s; 2 signal dk/d(r^2) = -(5/3) signal (1 + s) e^-s
        s += 1.0
        dk = s * e
        r2 *= 5.0 / 3.0  # s^2 / 3
        r2 += s
        r2 *= e
        dk *= -5.0 / 3.0
        return r2, dk

    def predict_mean_with_grad(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (m,) and its gradient (m, d) w.r.t. each row of ``xs``."""
        xs = np.atleast_2d(xs)
        ks, dk = self._cross_with_dk(xs)
        return self.params.mean + ks @ self._alpha, self._grad_rows(xs, dk, self._alpha[None, :])

    def predict_with_grad(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, std and their gradients w.r.t. each row of ``xs`` (rows are independent points)."""
        xs = np.atleast_2d(xs)
        ks, dk = self._cross_with_dk(xs)
        mean = self.params.mean + ks @ self._alpha
        # LAPACK's potrs directly: cho_solve's checks cost as much as the solve on a polish's few rows
        kinv_ks = lapack.dpotrs(self._chol, ks.T, lower=1)[0].T  # (m, n)
        var = self._signal - np.einsum("mn,mn->m", ks, kinv_ks)
        dmean = self._grad_rows(xs, dk, self._alpha[None, :])
        dvar = -2.0 * self._grad_rows(xs, dk, kinv_ks)
        var = np.maximum(var, 1e-20)
        std = np.sqrt(var)
        return mean, std, dmean, dvar / (2.0 * std[:, None])


def _neg_log_marginal(
    theta: np.ndarray, y: np.ndarray, diff2: np.ndarray, prior: LogNormalPrior
) -> tuple[float, np.ndarray]:
    """Negative log posterior of the hyperparameters (up to a constant) and its analytic gradient."""
    p = GPParams.unpack(theta)
    n = len(y)
    inv_l2 = np.exp(-2.0 * p.log_lengthscales)
    r = np.sqrt(np.maximum(diff2 @ inv_l2, 0.0))
    signal, noise = math.exp(p.log_signal), math.exp(p.log_noise)
    kf = signal * matern52(r)
    k = kf + noise * np.eye(n)
    try:
        chol = robust_cholesky(k, max_tries=3)
    except GPFitError:
        return 1e25, np.zeros_like(theta)
    resid = y - p.mean
    alpha = linalg.cho_solve((chol, True), resid, check_finite=False)
    value = 0.5 * float(resid @ alpha) + float(np.log(np.diag(chol)).sum()) + n * _LOG_SQRT_2PI
    kinv = linalg.cho_solve((chol, True), np.eye(n), check_finite=False)
    w = kinv - np.outer(alpha, alpha)  # d nll / d K = w / 2
    # dK/dlog l_j = -2 signal dk/d(r^2) * diff2_j / l_j^2
    g = w * (-2.0 * signal * _matern52_dr2(r))
    grad_ls = 0.5 * np.einsum("ij,ijk->k", g, diff2) * inv_l2
    grad = np.concatenate(
        [
            grad_ls,
            [0.5 * float((w * kf).sum()), 0.5 * noise * float(np.trace(w)), -float(alpha.sum())],
        ]
    )
    pv, pg = prior.neg_log_density(p)
    return value + pv, grad + pg


def fit_gp(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    n_restarts: int = 2,
    maxiter: int = 80,
) -> GaussianProcess:
    """MAP hyperparameters by L-BFGS-B from the prior's centre plus ``n_restarts`` prior draws."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    d = x.shape[1]
    prior = LogNormalPrior.for_dims(d)
    diff2 = (x[:, None, :] - x[None, :, :]) ** 2
    bounds = [LOG_LENGTHSCALE_BOUNDS] * d + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS, MEAN_BOUNDS]
    lo, hi = np.array(bounds).T
    centre = GPParams(np.full(d, prior.ls_loc), 0.0, prior.noise_loc, 0.0).pack()
    starts = [centre]
    for _ in range(n_restarts):
        draw = centre.copy()
        draw[:d] += prior.ls_scale * rng.standard_normal(d)
        draw[d] += 0.5 * rng.standard_normal()
        draw[d + 1] += prior.noise_scale * rng.standard_normal()
        starts.append(draw)
    best_theta, best_val = None, math.inf
    for start in starts:
        try:
            res = optimize.minimize(
                _neg_log_marginal,
                np.clip(start, lo, hi),
                args=(y, diff2, prior),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": maxiter},
            )
        except (ValueError, ArithmeticError, linalg.LinAlgError):
            continue
        if np.isfinite(res.fun) and res.fun < best_val and np.all(np.isfinite(res.x)):
            best_theta, best_val = res.x, float(res.fun)
    if best_theta is None or best_val >= 1e24:
        raise GPFitError("no hyperparameter start gave a finite marginal likelihood")
    return GaussianProcess(x, y, GPParams.unpack(np.clip(best_theta, lo, hi)))
