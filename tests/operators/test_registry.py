"""The operator registry test: every operator in ``LINEAR``/``NONLINEAR`` passes every check of ``registry_checks``.

Adding an operator = adding one line. Each entry is built at small sizes so that ``to_matrix()`` and
``numpy.linalg.pinv`` are cheap; real and complex images, one and several channels, odd and even sizes.
"""

from __future__ import annotations

import pytest
import torch

from bayesinv.operators import (MRI, OPERATORS, Blur, CodedDiffraction, Identity, Inpaint, MultiCoilMRI,
                                PhaseRetrieval, SubsampledFourier, SuperResolution, bernoulli_sensing, box_mask,
                                cartesian_mask, gaussian_sensing, make_operator, motion_kernel, random_mask,
                                simulate_coil_maps, uniform_kernel)
from bayesinv.operators.base import LinearOperator
from tests.operators.registry_checks import check_linear_operator, check_nonlinear_operator


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


LINEAR = {
    "identity": lambda: Identity((2, 3, 4)),
    "blur-gauss-8x8": lambda: Blur.gaussian((1, 8, 8), 0.8),
    "blur-gauss-6x10-complex": lambda: Blur.gaussian((2, 6, 10), 1.0, size=5, input_complex=True),
    "blur-uniform-rankdeficient": lambda: Blur((1, 6, 6), uniform_kernel(3)),
    "blur-motion-even": lambda: Blur((1, 7, 8), motion_kernel(4, 30.0, 2.5)),
    "blur-random-kernel": lambda: Blur((2, 5, 6), torch.rand(2, 3, generator=_g(1), dtype=torch.float64)),
    "blur-std0": lambda: Blur.gaussian((1, 6, 6), 0.0, size=5),
    "inpaint-image": lambda: Inpaint((1, 6, 6), random_mask((6, 6), 0.5, _g(2))),
    "inpaint-pixels-channels": lambda: Inpaint((2, 5, 4), random_mask((2, 5, 4), 0.3, _g(3)), output="pixels"),
    "inpaint-box-complex": lambda: Inpaint((1, 6, 6), box_mask((6, 6), (1, 2, 3, 2)), input_complex=True),
    "inpaint-empty": lambda: Inpaint((1, 4, 4), torch.zeros(4, 4, dtype=torch.bool)),
    "superres-2": lambda: SuperResolution((1, 6, 8), 2),
    "superres-3-complex": lambda: SuperResolution((2, 6, 6), 3, input_complex=True),
    "superres-1": lambda: SuperResolution((1, 3, 3), 1),
    "cs-gaussian": lambda: gaussian_sensing((1, 5, 6), 9, _g(4)),
    "cs-bernoulli": lambda: bernoulli_sensing((2, 3, 3), 7, _g(5)),
    "cs-fourier-real": lambda: SubsampledFourier.random((1, 6, 6), 10, _g(6)),
    "cs-fourier-odd-complex": lambda: SubsampledFourier.random((2, 5, 7), 9, _g(7), input_complex=True),
    "mri-random-real": lambda: MRI((1, 8, 8), cartesian_mask(8, 2, 0.25, generator=_g(8))),
    "mri-equispaced-odd": lambda: MRI((1, 7, 9), cartesian_mask((7, 9), 3, 0.2, kind="equispaced", generator=_g(9))),
    "mri-complex": lambda: MRI((1, 8, 6), cartesian_mask((8, 6), 2, 0.2, generator=_g(10)), input_complex=True),
    "mri-multicoil-real": lambda: MultiCoilMRI((1, 8, 8), cartesian_mask(8, 2, 0.25, generator=_g(11)),
                                               simulate_coil_maps(4, 8)),
    "mri-multicoil-complex": lambda: MultiCoilMRI((1, 6, 6), cartesian_mask(6, 2, 0.34, generator=_g(12)),
                                                  simulate_coil_maps(3, 6), input_complex=True),
    "mri-multicoil-noncartesian-cg": lambda: MultiCoilMRI((1, 6, 6), random_mask((6, 6), 0.5, _g(17)),
                                                          simulate_coil_maps(6, 6)),
}

NONLINEAR = {
    "phase-retrieval": lambda: PhaseRetrieval((1, 4, 4), 40, _g(13)),
    "phase-retrieval-complex": lambda: PhaseRetrieval((2, 3, 3), 30, _g(14), input_complex=True),
    "phase-cdp": lambda: CodedDiffraction((1, 6, 5), 3, _g(15)),
    "phase-cdp-complex": lambda: CodedDiffraction((2, 4, 4), 2, _g(16), input_complex=True),
}

# every registered name at a small size with its default options (and the non-default variants that matter)
NAMED = [(name, {}) for name in sorted(OPERATORS)] + [
    ("inpaint", {"kind": "box"}), ("inpaint", {"output": "pixels"}), ("deblur", {"kernel": "motion"}),
    ("deblur", {"kernel": "uniform", "size": 3}), ("mri", {"kind": "equispaced", "input_complex": True}),
]


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_operator_passes_the_registry_checks(name):
    check_linear_operator(LINEAR[name](), _g(10))


# the real-input operators whose A^T A is diagonal in pixels or Fourier (``gram_diagonal``); the rest give None
GRAM_DIAGONAL = {"identity", "blur-gauss-8x8", "blur-uniform-rankdeficient", "blur-motion-even", "blur-random-kernel",
                 "blur-std0", "inpaint-image", "inpaint-pixels-channels", "inpaint-empty", "cs-fourier-real",
                 "mri-random-real", "mri-equispaced-odd"}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_gram_diagonal_is_declared_exactly_where_the_gram_is_diagonal(name):
    assert (LINEAR[name]().gram_diagonal() is not None) == (name in GRAM_DIAGONAL)


@pytest.mark.parametrize("name", sorted(NONLINEAR))
def test_nonlinear_operator_passes_the_registry_checks(name):
    check_nonlinear_operator(NONLINEAR[name](), _g(11))


@pytest.mark.parametrize(("name", "options"), NAMED, ids=[n + "".join(f"-{v}" for v in o.values()) for n, o in NAMED])
def test_every_registered_operator_passes_the_checks(name, options):
    op = make_operator(name, (1, 10, 10), seed=3, **options)
    if isinstance(op, LinearOperator):
        check_linear_operator(op, _g(12), pinv_rtol=1e-6)
    else:
        check_nonlinear_operator(op, _g(12))


def test_the_seed_fixes_the_random_parts():
    a, b = (make_operator("cs_gaussian", (1, 4, 4), seed=7) for _ in range(2))
    assert torch.equal(a.matrix, b.matrix)
    assert not torch.equal(a.matrix, make_operator("cs_gaussian", (1, 4, 4), seed=8).matrix)
    assert torch.equal(make_operator("mri", (1, 16, 16), seed=1).mask, make_operator("mri", (1, 16, 16), seed=1).mask)
