"""MRI: forward model against numpy's FFT, Cartesian masks, coil maps, multi-coil identities, DDRM compatibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import MRI, MultiCoilMRI, cartesian_mask, simulate_coil_maps
from bayesinv.priors import GaussianPrior, exact_posterior
from bayesinv.samplers.ddrm import sample_ddrm


def test_single_coil_forward_is_the_masked_centred_orthonormal_fft(generator):
    mask = cartesian_mask((8, 10), 2, 0.2, generator=generator)
    x = torch.randn(2, 1, 8, 10, generator=generator, dtype=torch.float64)
    want = np.fft.fftshift(np.fft.fft2(x.numpy(), norm="ortho"), axes=(-2, -1)) * mask.numpy()
    np.testing.assert_allclose(MRI((1, 8, 10), mask)(x).numpy(), want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["random", "equispaced"])
@pytest.mark.parametrize(("width", "acceleration", "center_fraction"), [(32, 4, 0.08), (64, 8, 0.04), (33, 3, 0.1)])
def test_cartesian_mask_has_the_centre_and_the_acceleration_fraction_of_lines(kind, width, acceleration,
                                                                              center_fraction, generator):
    mask = cartesian_mask((16, width), acceleration, center_fraction, kind=kind, generator=generator)
    assert mask.shape == (16, width) and mask.dtype == torch.bool
    assert bool((mask == mask[:1]).all())  # whole k-space lines (columns)
    lines = mask[0]
    assert int(lines.sum()) == round(width / acceleration)
    num_center = round(width * center_fraction)
    start = width // 2 - num_center // 2
    assert bool(lines[start : start + num_center].all())  # fully sampled centre, around frequency 0 at W // 2
    if kind == "equispaced":  # outer lines: gaps between consecutive ones differ by at most one line
        outer = (~torch.isin(torch.arange(width), torch.arange(start, start + num_center)))
        positions = torch.arange(width)[outer][lines[outer]]
        gaps = (torch.arange(outer.sum())[lines[outer]]).diff()
        assert positions.numel() < 2 or int(gaps.max() - gaps.min()) <= 1


def test_cartesian_mask_is_reproducible_and_random_lines_are_uniform():
    a = cartesian_mask(32, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, cartesian_mask(32, 4, generator=torch.Generator().manual_seed(5)))
    assert bool(cartesian_mask(16, 1, generator=torch.Generator()).all())
    # each outer line is chosen with probability extra / outer: compare frequencies over many masks (binomial 5 sigma)
    draws = torch.stack([cartesian_mask(32, 4, 0.08, generator=torch.Generator().manual_seed(s))[0] for s in range(400)])
    outer = torch.ones(32, dtype=torch.bool)
    outer[15:18] = False
    p = (8 - 3) / 29
    freq = draws[:, outer].double().mean(0)
    assert float((freq - p).abs().max()) < 5 * np.sqrt(p * (1 - p) / 400)


def test_coil_maps_have_unit_sum_of_squares_and_are_smooth():
    maps = simulate_coil_maps(8, (16, 12))
    assert maps.shape == (8, 16, 12) and maps.is_complex()
    torch.testing.assert_close((maps.abs() ** 2).sum(0), torch.ones(16, 12, dtype=torch.float64), rtol=1e-13, atol=1e-13)
    # smooth: neighbouring pixels differ by much less than the map's range
    assert float((maps[:, 1:] - maps[:, :-1]).abs().max()) < 0.3 * float(maps.abs().max())


@pytest.mark.parametrize("input_complex", [False, True])
def test_fully_sampled_multicoil_is_an_isometry(input_complex, generator):
    op = MultiCoilMRI((2, 8, 8), torch.ones(8, 8, dtype=torch.bool), simulate_coil_maps(5, 8),
                      input_complex=input_complex)
    x = torch.randn(3, 2, 8, 8, generator=generator, dtype=torch.float64)
    if input_complex:
        x = torch.complex(x, torch.randn(3, 2, 8, 8, generator=generator, dtype=torch.float64))
    torch.testing.assert_close(op.normal(x), x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.pinv(op(x)), x, rtol=1e-10, atol=1e-10)


def test_undersampled_multicoil_normal_operator_is_a_contraction(generator):
    op = MultiCoilMRI((1, 8, 8), cartesian_mask(8, 4, 0.25, generator=generator), simulate_coil_maps(4, 8),
                      input_complex=True)
    matrix = op.to_matrix().numpy()
    eig = np.linalg.eigvalsh(matrix.conj().T @ matrix)
    assert eig.min() > -1e-12 and eig.max() < 1 + 1e-12 and eig.max() > 0.9


def test_multicoil_adjoint_equals_the_sum_over_coils(generator):
    maps = simulate_coil_maps(3, 6)
    mask = cartesian_mask(6, 2, 0.34, generator=generator)
    op = MultiCoilMRI((1, 6, 6), mask, maps, input_complex=True)
    y = torch.randn(2, 3, 1, 6, 6, generator=generator, dtype=torch.complex128)
    want = sum(maps[c].numpy().conj() * np.fft.ifft2(np.fft.ifftshift(y[:, c].numpy() * mask.numpy(), axes=(-2, -1)),
                                              norm="ortho") for c in range(3))
    np.testing.assert_allclose(op.adjoint(y).numpy(), want, rtol=1e-12, atol=1e-13)


def test_ddrm_on_single_coil_mri_matches_the_exact_posterior_mean(generator):
    """The complex-Fourier SVD convention of DDRM on real images: real samples near the exact Gaussian posterior."""
    mask = cartesian_mask(4, 2, 0.25, generator=generator)
    prior = GaussianPrior(torch.zeros(1, 4, 4, dtype=torch.float64), 1.0)
    problem = InverseProblem(MRI((1, 4, 4), mask), Gaussian(0.05), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    post = sample_ddrm(problem, y, num_samples=1000, generator=torch.Generator().manual_seed(0), progress=False)
    exact = exact_posterior(problem, y)
    assert not post.samples.is_complex()
    assert float((post.mean() - exact.mean.reshape(post.mean().shape)).abs().max()) < 0.15
