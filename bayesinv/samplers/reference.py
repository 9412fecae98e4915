"""Reference posterior samples by NUTS (NumPyro) for priors with an explicit density.

The gold standard that diffusion samplers are compared with where no closed form exists: the model
``x ~ prior``, ``y ~ N(A x, sigma^2 I)`` is rebuilt in NumPyro from the dense matrix
``problem.operator.to_matrix()`` and sampled with the No-U-Turn Sampler (Hoffman & Gelman 2014,
"The No-U-Turn Sampler", JMLR 15; NumPyro: Phan et al. 2019) in float64 on the CPU. Priors:

* ``"gaussian"``: ``x = mu + L z`` with ``z ~ N(0, I)`` and ``L L^T = Sigma`` (the non-centred form,
  so NUTS sees a well-conditioned target), from a Gaussian prior.
* ``"mixture"``: the Gaussian-mixture density ``sum_k w_k N(x; mu_k, Sigma_k)`` (low dimension; chains
  start from prior draws, and NUTS can still miss well-separated modes: compare with the exact
  posterior of :func:`bayesinv.priors.exact_posterior`).
* ``"laplace_fd"``: ``p(x) ∝ exp(-lambda sum_i |(D x)_i|)`` with ``D`` forward differences along each
  image axis (anisotropic total variation; Laplace "sparsity in finite differences").
* ``"tv"``: ``p(x) ∝ exp(-lambda sum_pixels (sqrt(dx^2 + dy^2 + eps^2) - eps))``, the isotropic total
  variation smoothed by ``eps = tv_smoothing`` so that the gradient exists.

``laplace_fd`` and ``tv`` are improper (flat along constant images); the posterior is proper when ``A``
does not annihilate constants. ``regularization`` is ``lambda``. Compiled samplers are cached by model
and shape, so repeated calls with new data (simulation-based calibration) compile once.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior
>>> problem = InverseProblem(Identity((2,)), Gaussian(1.0), GaussianPrior(torch.zeros(2), 1.0))
>>> # skipped in doctests (JAX compiles for 10-30 s); tests/samplers/test_reference.py runs it
>>> post = sample_nuts(problem, torch.zeros(2), num_samples=50, num_warmup=50, num_chains=2)  # doctest: +SKIP
>>> post.samples.shape, post.sampler  # doctest: +SKIP
(torch.Size([2, 50, 2]), 'nuts')
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict

import numpy as np
import torch

from bayesinv.posterior import Posterior
from bayesinv.priors.linear_gaussian import dense_linear_gaussian
from bayesinv.priors.gaussian import GaussianPrior, StationaryGaussianPrior
from bayesinv.priors.mixture import GaussianMixturePrior
from bayesinv.problem import InverseProblem

__all__ = ["sample_nuts", "PRIOR_KINDS"]

PRIOR_KINDS = ("gaussian", "mixture", "laplace_fd", "tv")
_CACHE_SIZE = 8
_MCMC_CACHE: OrderedDict = OrderedDict()


def _resolve_prior(problem: InverseProblem, prior: str) -> str:
    if prior == "auto":
        if isinstance(problem.prior, GaussianPrior | StationaryGaussianPrior):
            return "gaussian"
        if isinstance(problem.prior, GaussianMixturePrior):
            return "mixture"
        raise ValueError(f"prior='auto' recognises Gaussian and Gaussian-mixture priors, not "
                         f"{type(problem.prior).__name__}; pass prior='laplace_fd' or 'tv' with regularization=...")
    if prior not in PRIOR_KINDS:
        raise ValueError(f"prior must be 'auto' or one of {PRIOR_KINDS}, got {prior!r}")
    if prior == "gaussian" and not isinstance(problem.prior, GaussianPrior | StationaryGaussianPrior):
        raise TypeError(f"prior='gaussian' needs a GaussianPrior on the problem, got {type(problem.prior).__name__}")
    if prior == "mixture" and not isinstance(problem.prior, GaussianMixturePrior):
        raise TypeError(f"prior='mixture' needs a GaussianMixturePrior on the problem, "
                        f"got {type(problem.prior).__name__}")
    return prior


def _finite_differences(x, in_shape: tuple[int, ...]):
    """Forward differences along the last one (vectors) or two (images) axes, zero at the far edge."""
    import jax.numpy as jnp

    img = x.reshape(in_shape)
    if len(in_shape) == 1:
        return (jnp.diff(img, append=img[-1:]),)
    dx = jnp.diff(img, axis=-1, append=img[..., -1:])
    dy = jnp.diff(img, axis=-2, append=img[..., -1:, :])
    return dx, dy


@functools.lru_cache(maxsize=None)
def _model(kind: str, in_shape: tuple[int, ...]):
    """The NumPyro model for a prior kind (one function object per kind and shape, so compilations are shared)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist

    d = math.prod(in_shape)

    def likelihood(x, matrix, y, sigma):
        numpyro.sample("y", ndist.Normal(matrix @ x, sigma).to_event(1), obs=y)

    if kind == "gaussian":
        def model(matrix, y, sigma, mean, scale_tril):
            z = numpyro.sample("z", ndist.Normal(jnp.zeros(d), 1.0).to_event(1))
            x = numpyro.deterministic("x", mean + scale_tril @ z)
            likelihood(x, matrix, y, sigma)
    elif kind == "mixture":
        def model(matrix, y, sigma, logits, means, scale_trils):
            mix = ndist.MixtureSameFamily(ndist.Categorical(logits=logits),
                                          ndist.MultivariateNormal(means, scale_tril=scale_trils))
            x = numpyro.sample("x", mix)
            likelihood(x, matrix, y, sigma)
    else:
        def model(matrix, y, sigma, regularization, smoothing):
            x = numpyro.sample("x", ndist.ImproperUniform(ndist.constraints.real_vector, (), (d,)))
            diffs = _finite_differences(x, in_shape)
            if kind == "laplace_fd":
                energy = sum(jnp.abs(g).sum() for g in diffs)
            else:
                energy = (jnp.sqrt(sum(g**2 for g in diffs) + smoothing**2) - smoothing).sum()
            numpyro.factor("prior", -regularization * energy)
            likelihood(x, matrix, y, sigma)
    return model


def _model_args(kind: str, problem: InverseProblem, regularization, tv_smoothing) -> tuple[np.ndarray, ...]:
    prior = problem.prior
    if kind == "gaussian":
        lam, vecs = torch.linalg.eigh(prior.covariance_matrix)
        root = vecs * lam.clamp_min(0).sqrt()  # any L with L L^T = Sigma (works for singular Sigma)
        return prior.mean_vector.numpy(), root.numpy()
    if kind == "mixture":
        covs = prior.covariance_matrices
        jitter = 1e-12 * torch.diagonal(covs, dim1=-2, dim2=-1).amax(-1)[:, None, None]
        chol = torch.linalg.cholesky(covs + jitter * torch.eye(prior.dim, dtype=torch.float64))
        return prior.weights.log().numpy(), prior.means.numpy(), chol.numpy()
    if regularization is None or not regularization > 0:
        raise ValueError(f"prior={kind!r} needs regularization=lambda > 0, got {regularization}")
    return np.float64(regularization), np.float64(tv_smoothing)


def _get_mcmc(key: tuple, model, **options):
    from numpyro.infer import MCMC, NUTS

    if key not in _MCMC_CACHE:
        kernel = NUTS(model, target_accept_prob=options.pop("target_accept"),
                      max_tree_depth=options.pop("max_tree_depth"))
        _MCMC_CACHE[key] = MCMC(kernel, jit_model_args=True, **options)
        while len(_MCMC_CACHE) > _CACHE_SIZE:
            _MCMC_CACHE.popitem(last=False)
    _MCMC_CACHE.move_to_end(key)
    return _MCMC_CACHE[key]


def sample_nuts(problem: InverseProblem, y: torch.Tensor, *, num_samples: int = 1000, num_chains: int = 4,
                num_warmup: int = 1000, seed: int = 0, prior: str = "auto", regularization: float | None = None,
                tv_smoothing: float = 1e-3, target_accept: float = 0.8, max_tree_depth: int = 10,
                thinning: int = 1, chain_method: str = "vectorized", init: str = "auto",
                progress: bool = False) -> Posterior:
    """Sample ``p(x | y)`` with NumPyro's NUTS for a prior with an explicit density (see module docstring).

    Parameters
    ----------
    problem : a linear problem with known Gaussian noise (``operator.to_matrix()`` must be affordable).
    y : the measurement, ``out_shape`` or ``(1, *out_shape)``.
    num_samples, num_warmup, num_chains, thinning : NUTS run lengths (draws kept per chain:
        ``num_samples // thinning``).
    seed : seeds the JAX PRNG key (and the torch generator drawing initial points from the prior).
    prior : ``"auto"`` (from ``problem.prior``), ``"gaussian"``, ``"mixture"``, ``"laplace_fd"`` or ``"tv"``.
    regularization, tv_smoothing : ``lambda`` and ``eps`` of ``laplace_fd``/``tv``.
    target_accept, max_tree_depth : NUTS's dual-averaging target and tree-depth limit (NumPyro defaults).
    chain_method : ``"vectorized"`` (chains in lockstep, one compilation) or ``"sequential"``.
    init : ``"prior"`` (chains start at prior draws; mixtures), ``"uniform"`` (NumPyro's uniform(-2, 2) in
        unconstrained space) or ``"auto"`` (``"prior"`` for mixtures, ``"uniform"`` otherwise).

    Returns
    -------
    Posterior with samples ``(num_chains, num_samples // thinning, *in_shape)``, ``nfe`` the mean number
    of gradient evaluations per chain in the sampling phase, divergences and acceptance in ``extras``.
    """
    import jax

    kind = _resolve_prior(problem, prior)
    if chain_method not in ("vectorized", "sequential"):
        raise ValueError(f"chain_method must be 'vectorized' or 'sequential', got {chain_method!r}")
    if min(num_samples, num_chains, thinning) < 1 or num_warmup < 0:
        raise ValueError(f"need num_samples, num_chains, thinning >= 1 and num_warmup >= 0; got {num_samples}, "
                         f"{num_chains}, {thinning}, {num_warmup}")
    if init == "auto":
        init = "prior" if kind == "mixture" else "uniform"
    if init not in ("prior", "uniform"):
        raise ValueError(f"init must be 'auto', 'prior' or 'uniform', got {init!r}")
    matrix, y_vec, sigma = dense_linear_gaussian(problem, y)
    in_shape = tuple(problem.operator.in_shape)
    args = (matrix.numpy(), y_vec.numpy(), np.float64(sigma)) + _model_args(kind, problem, regularization, tv_smoothing)
    init_params = None
    if init == "prior":
        if kind not in ("gaussian", "mixture"):
            raise ValueError(f"init='prior' needs a proper prior; prior={kind!r} is improper: use init='uniform'")
        draws = problem.prior.sample_n(num_chains, generator=torch.Generator().manual_seed(int(seed)))
        draws = draws.reshape(num_chains, -1)
        if kind == "gaussian":  # the sampled site is the whitened z = L^+ (x - mu)
            draws = torch.linalg.lstsq(torch.from_numpy(args[4]), (draws - problem.prior.mean_vector).T).solution.T
        init_params = {("z" if kind == "gaussian" else "x"): np.asarray(draws.numpy())}
    settings = {"prior": kind, "num_samples": num_samples, "num_warmup": num_warmup, "num_chains": num_chains,
                "thinning": thinning, "target_accept": target_accept, "max_tree_depth": max_tree_depth,
                "chain_method": chain_method, "init": init, "regularization": regularization,
                "tv_smoothing": tv_smoothing if kind == "tv" else None}
    key = (kind, in_shape, matrix.shape, num_samples, num_warmup, num_chains, thinning, target_accept,
           max_tree_depth, chain_method, progress)
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        mcmc = _get_mcmc(key, _model(kind, in_shape), num_warmup=num_warmup, num_samples=num_samples,
                         num_chains=num_chains, thinning=thinning, chain_method=chain_method,
                         progress_bar=progress, target_accept=target_accept, max_tree_depth=max_tree_depth)
        if init_params is not None and num_chains == 1:
            init_params = {k: v[0] for k, v in init_params.items()}
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(int(seed)), *args, init_params=init_params,
                 extra_fields=("num_steps", "accept_prob", "diverging"))
        samples = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
        extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
        wall = time.perf_counter() - start
    samples = torch.from_numpy(samples.copy()).reshape(num_chains, -1, *in_shape)
    if not bool(torch.isfinite(samples).all()):
        raise RuntimeError("NUTS returned non-finite samples; check the problem's scaling")
    nfe = int(round(extra["num_steps"].reshape(num_chains, -1).sum(1).mean()))
    extras = {"divergences": int(extra["diverging"].sum()), "accept_prob": float(extra["accept_prob"].mean()),
              "mean_num_steps": float(extra["num_steps"].mean())}
    return Posterior(samples, sampler="nuts", settings=settings, nfe=nfe, wall_time=wall, seed=int(seed),
                     problem={"name": problem.name, "operator": repr(problem.operator), "noise": repr(problem.noise),
                              "prior": kind}, extras=extras)
