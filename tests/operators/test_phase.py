"""Phase retrieval operators against numpy, Parseval's identity and the measurement's expected value."""

from __future__ import annotations

import numpy as np
import torch

from bayesinv.operators import CodedDiffraction, PhaseRetrieval


def test_phase_retrieval_is_the_squared_modulus_of_the_gaussian_matrix_product(generator):
    op = PhaseRetrieval((1, 3, 4), 50, generator)
    x = torch.randn(2, 1, 3, 4, generator=generator, dtype=torch.float64)
    want = np.abs(x.reshape(2, -1).numpy() @ op.matrix.numpy().T) ** 2
    np.testing.assert_allclose(op(x).numpy(), want, rtol=1e-12)
    assert op(x).dtype == torch.float64 and op(x.float()).dtype == torch.float32


def test_phase_retrieval_matrix_has_the_stated_complex_gaussian_entries():
    n, m = 64, 2000
    a = PhaseRetrieval((1, 8, 8), m, torch.Generator().manual_seed(0)).matrix
    # real and imaginary parts N(0, 1/(2n)): E|a|^2 = 1/n, so E y = ||x||^2 / n; sample mean within 5 standard errors
    power = (a.abs() ** 2).numpy() * n  # Exp(1) entries: mean 1, std 1
    assert abs(power.mean() - 1) < 5 / np.sqrt(power.size)
    assert abs(a.real.numpy().mean()) < 5 / np.sqrt(2 * n * power.size)


def test_coded_diffraction_matches_numpy_and_preserves_energy(generator):
    op = CodedDiffraction((2, 5, 6), 3, generator)
    x = torch.randn(2, 2, 5, 6, generator=generator, dtype=torch.float64)
    masks = op.masks.numpy()
    np.testing.assert_allclose(np.abs(masks), 1.0, rtol=1e-14)
    want = np.abs(np.fft.fft2(x.numpy()[:, None] * masks[None, :, None], norm="ortho")) ** 2
    y = op(x)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-12)
    # Parseval: each pattern's intensities sum to the image energy, per channel
    np.testing.assert_allclose(y.sum(dim=(-2, -1)).numpy(), (x**2).sum(dim=(-2, -1))[:, None].expand(2, 3, 2).numpy(),
                               rtol=1e-12)


def test_phase_is_invisible_to_the_measurements(generator):
    op = PhaseRetrieval((1, 3, 3), 20, generator, input_complex=True)
    x = torch.randn(1, 1, 3, 3, generator=generator, dtype=torch.complex128)
    torch.testing.assert_close(op(x * np.exp(0.7j)), op(x), rtol=1e-12, atol=1e-12)
    cdp = CodedDiffraction((1, 4, 4), 2, generator)
    real = torch.randn(1, 1, 4, 4, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(cdp(-real), cdp(real), rtol=1e-12, atol=1e-12)
