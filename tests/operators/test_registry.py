"""The operator registry test: every operator in ``CASES`` passes every check of ``registry_checks``.

Adding an operator = adding one line to ``LINEAR`` (or ``NONLINEAR``).
"""

from __future__ import annotations

import pytest
import torch

from bayesinv.operators import Identity
from bayesinv.operators.blur import Blur, gaussian_kernel, motion_kernel, uniform_kernel
from bayesinv.operators.inpaint import Inpaint, box_mask, random_mask
from tests.operators.registry_checks import check_linear_operator


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
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_operator_passes_the_registry_checks(name):
    check_linear_operator(LINEAR[name](), _g(10))
