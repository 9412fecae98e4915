"""A diffusers UNet2DModel + DDPMScheduler folder as a DiffusionPrior, checked against diffusers' own scheduler.

Part of the integrations lane (``pytest -m integrations tests/integrations``), see ``conftest.py`` here.
"""

import pytest
import torch

from bayesinv.errors import WeightsError
from bayesinv.priors.diffusers_adapter import load_diffusers_prior, schedule_from_diffusers_config

pytestmark = pytest.mark.integrations


@pytest.fixture(scope="module")
def diffusers(torchvision_shim, require):
    return require("diffusers", "diffusers")


def _save(diffusers, folder, prediction_type, beta_schedule):
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    sched = diffusers.DDPMScheduler(num_train_timesteps=100, beta_schedule=beta_schedule,
                                    prediction_type=prediction_type, clip_sample=False)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    sched.save_pretrained(folder / "scheduler")
    return unet.eval(), sched


@pytest.mark.parametrize("prediction_type,beta_schedule", [("epsilon", "linear"), ("v_prediction", "scaled_linear"),
                                                           ("sample", "squaredcos_cap_v2")])
def test_denoiser_matches_diffusers_pred_original_sample(diffusers, tmp_path, prediction_type, beta_schedule):
    unet, sched = _save(diffusers, tmp_path, prediction_type, beta_schedule)
    prior = load_diffusers_prior(tmp_path)
    assert tuple(prior.event_shape) == (1, 8, 8) and prior.pixel_range == (-1.0, 1.0)  # diffusers images: [-1, 1]
    torch.testing.assert_close(prior.schedule.alphas_cumprod, sched.alphas_cumprod.double(), rtol=1e-5, atol=1e-7)
    x_t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for t in (0, 37, 99):
        with torch.no_grad():
            out = unet(x_t, t).sample
        reference = sched.step(out, t, x_t, generator=torch.Generator().manual_seed(0)).pred_original_sample
        torch.testing.assert_close(prior.denoise(x_t, t), reference, rtol=1e-4, atol=1e-4)


def test_errors(tmp_path):
    with pytest.raises(WeightsError, match="not a diffusers model folder"):
        load_diffusers_prior(tmp_path)
    with pytest.raises(ValueError, match="beta_schedule 'sigmoid' is not supported"):
        schedule_from_diffusers_config({"beta_schedule": "sigmoid"})
