"""benchmarks/finetune_prior.py: the linear anneal of the lr and lesion weight, and the lesion-weighted loss."""

import importlib.util
from pathlib import Path

import pytest
import torch

from bayesinv.priors.networks import Denoiser, UNet
from bayesinv.priors.networks.denoiser import training_target
from bayesinv.priors.schedules import vp_linear

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "finetune_prior.py"
_SPEC = importlib.util.spec_from_file_location("finetune_prior", _PATH)
finetune_prior = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(finetune_prior)


def test_annealed_is_linear_then_held():
    values = [finetune_prior.annealed(3.0, 1.0, step, 600) for step in (0, 150, 300, 450, 600, 900)]
    assert values == [3.0, 2.5, 2.0, 1.5, 1.0, 1.0]
    assert finetune_prior.annealed(6e-5, None, 450, 600) == 6e-5
    assert finetune_prior.annealed(6e-5, 0.0, 300, 600) == pytest.approx(3e-5, rel=1e-12)
    with pytest.raises(ValueError, match="total must be positive"):
        finetune_prior.annealed(1.0, 0.0, 0, 0)


@pytest.mark.parametrize("lesion_weight, lesion_tmin, per_lesion", [(1.0, 0, False), (3.0, 0, False), (2.5, 50, False),
                                                                    (3.0, 0, True), (2.5, 50, True)])
def test_loss_weights_lesion_pixels_above_tmin(lesion_weight, lesion_tmin, per_lesion):
    torch.manual_seed(0)
    net = UNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), image_size=8)
    denoiser = Denoiser(net, vp_linear(100), "eps")
    x0 = torch.rand(6, 1, 8, 8)
    masks = torch.zeros_like(x0)
    masks[:3, :, 2:4, 2:4] = 1.0  # lesions of 4, 4 and 9 pixels
    masks[2, :, 2:5, 2:5] = 1.0
    loss_fn = finetune_prior.make_loss(0.5, 40, lesion_weight, lesion_tmin, per_lesion)
    loss = loss_fn(denoiser, (x0, masks), torch.Generator().manual_seed(3))
    # the same draws by hand, in the order make_loss takes them
    gen = torch.Generator().manual_seed(3)
    low = torch.rand(6, generator=gen) < 0.5
    t = torch.where(low, torch.randint(0, 40, (6,), generator=gen), torch.randint(0, 100, (6,), generator=gen))
    eps = torch.randn(x0.shape, generator=gen)
    alpha, sigma = denoiser.schedule.coefficients(t, x0)
    with torch.no_grad():
        err = (denoiser.raw(alpha * x0 + sigma * eps, t) - training_target("eps", x0, eps, alpha, sigma)) ** 2
    per_pixel = torch.tensor([9 / 4, 9 / 4, 1.0, 0, 0, 0]).view(-1, 1, 1, 1) if per_lesion else 1.0
    weight = 1 + (lesion_weight - 1) * masks * per_pixel * (t >= lesion_tmin).float().view(-1, 1, 1, 1)
    assert loss.item() == pytest.approx((err * weight).mean().item(), rel=1e-6)
