"""Small problems shared by the sampler tests (exact priors, a tiny random-network prior, a complex operator)."""

from __future__ import annotations

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.diagnostics.distances import distance_to_reference, random_directions, sliced_wasserstein
from bayesinv.operators.base import SVD, LinearOperator
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, ScorePrior, mixture_testbed, vp_linear

__all__ = ["TinyNetworkPrior", "DFTOperator", "gaussian_problem", "sw_ratio", "sw_to_floor", "mixture_bed",
           "flat_problem", "TINY_OPTIONS"]


class TinyNetworkPrior(ScorePrior):
    """A ScorePrior whose denoiser is a fixed random two-layer network (no density; nonlinear in ``x_t``)."""

    def __init__(self, dim: int, generator: torch.Generator, schedule=None, hidden: int = 16,
                 pixel_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__((dim,), schedule if schedule is not None else vp_linear(40, 1e-3, 0.3))
        self.pixel_range = pixel_range  # the declared range the samplers' defaults and divergence checks read
        self.w1 = torch.randn(hidden, dim + 1, generator=generator, dtype=torch.float64) / dim**0.5
        self.w2 = torch.randn(dim, hidden, generator=generator, dtype=torch.float64) / hidden**0.5

    def _denoise(self, x_t, t):
        alpha, sigma = self.schedule.coefficients(t, x_t)
        level = (sigma / alpha).expand(x_t.shape[0], 1)
        h = torch.tanh(torch.cat([x_t, level], 1) @ self.w1.T)
        return x_t * alpha / (alpha**2 + sigma**2) + 0.3 * h @ self.w2.T


class DFTOperator(LinearOperator):
    """Real vectors ``(n,)`` -> complex rows ``F[rows] x`` of the unitary DFT (a 1-D single-coil MRI)."""

    def __init__(self, n: int, rows: list[int]):
        super().__init__((n,), (len(rows),), input_complex=False, output_complex=True)
        self.rows = torch.tensor(rows)
        self.n = n

    def _forward(self, x):
        return torch.fft.fft(x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64),
                             norm="ortho")[:, self.rows]

    def _adjoint(self, y):
        full = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        full[:, self.rows] = y
        return torch.fft.ifft(full, norm="ortho")

    def _pinv(self, y):
        return self.adjoint(y)

    def svd(self) -> SVD:
        rows, n = self.rows, self.n
        rest = torch.tensor([i for i in range(n) if i not in set(rows.tolist())], dtype=torch.long)
        order = torch.cat([rows, rest])

        def Vt(x):
            return torch.fft.fft(x.to(torch.complex128), norm="ortho")[:, order]

        def V(c):
            full = torch.zeros_like(c)
            full[:, order] = c
            return torch.fft.ifft(full, norm="ortho")

        def identity(v):
            return v

        return SVD(torch.ones(len(rows), dtype=torch.float64), V, Vt, identity, identity)


def gaussian_problem(generator, d=4, m=2, sigma=0.4, schedule=None):
    """A random Gaussian prior and a random matrix operator with one simulated measurement."""
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    prior = GaussianPrior(torch.randn(d, generator=generator, dtype=torch.float64),
                          a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.float64), schedule=schedule)
    problem = InverseProblem(MatrixOperator(torch.randn(m, d, generator=generator, dtype=torch.float64)),
                             Gaussian(sigma), prior, name="gauss")
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    return problem, y


def mixture_bed(num_measurements: int, seed: int | None = None, dim: int = 8, schedule=None):
    """The MCGdiff mixture mixture_bed with a fixed seed per measurement count."""
    seed = num_measurements if seed is None else seed
    return mixture_testbed(dim, num_measurements, generator=torch.Generator().manual_seed(seed), schedule=schedule)


def flat_problem(bed) -> InverseProblem:
    """The mixture_bed's problem with an uninformative likelihood (sigma_y = 1e4): its posterior is the prior."""
    return InverseProblem(bed.problem.operator, Gaussian(1e4), bed.problem.prior)


def sw_ratio(post, exact, seed: int = 1) -> tuple[float, float, float]:
    """``(distance, floor, ratio)`` of sliced Wasserstein to exact samples at the same sample size."""
    r = distance_to_reference(post, exact, generator=torch.Generator().manual_seed(seed))
    return r.distance, r.floor, r.ratio


def sw_to_floor(samples, exact, *, repeats: int = 6, num_reference: int = 4000, seed: int = 1) -> tuple[float, float]:
    """``(distance, floor)``: SW from ``samples`` to a large exact reference set, and the mean SW of ``repeats``
    independent exact sets of the same size to that reference (same directions): a steadier floor than one pair."""
    from bayesinv.diagnostics.distances import _as_points, _draw

    gen = torch.Generator().manual_seed(seed)
    points = _as_points("samples", samples)
    reference = _as_points("reference", _draw(exact, num_reference, gen))
    directions = random_directions(points.shape[1], 256, generator=gen)
    floors = [float(sliced_wasserstein(_as_points("exact", _draw(exact, points.shape[0], gen)), reference,
                                       directions=directions)) for _ in range(repeats)]
    return float(sliced_wasserstein(points, reference, directions=directions)), sum(floors) / repeats


# one small setting per registry sampler, shared by the dtype, device and registry-wide tests
TINY_OPTIONS = {
    "dps": {"steps": 5},
    "ddrm": {"steps": 5},
    "score_sde": {"steps": 5},
    "annealed_langevin": {"steps": 3, "steps_per_level": 3},
    "ula": {"steps": 5, "noise_level": 0.1},
    "pnp_ula": {"steps": 5, "noise_level": 0.1},
    "mala": {"steps": 5},
    "smc": {"steps": 5, "num_particles": 4},
    "dirac": {"variant": "po", "steps": 5},
    "split_gibbs": {"steps": 3, "anneal_sweeps": 2, "chebyshev_degree": 8},
    "split_gibbs_smc": {"steps": 2, "start_sweeps": 1, "final_sweeps": 1, "chebyshev_degree": 8},
}
