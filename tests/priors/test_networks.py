"""The U-Net and the eps/x0/v denoiser contract: shapes, exact round trips, input scaling."""

import math

import pytest
import torch

from bayesinv.priors.networks import (PARAMETRISATIONS, Denoiser, UNet, count_parameters, inference_layout,
                                      output_to_x0, save_weights, sha256_file, timestep_embedding, training_target,
                                      x0_to_output)
from bayesinv.priors.schedules import ve_geometric, vp_cosine, vp_linear


def _tiny(**kw):
    opts = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), image_size=8)
    opts.update(kw)
    return UNet(**opts)


def _randomise_output(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.out.weight.copy_(0.1 * torch.randn(net.out.weight.shape, generator=g))
    return net


@pytest.mark.parametrize("kw,shape", [({}, (3, 1, 8, 8)),
                                      ({"in_channels": 2, "out_channels": 3}, (2, 2, 8, 8)),
                                      ({"channel_mults": (1, 2, 2), "image_size": 16, "attention_resolutions": (8, 4)},
                                       (2, 1, 16, 16)),
                                      ({"channel_mults": (1,), "attention_resolutions": ()}, (1, 1, 8, 8))])
def test_unet_shapes(kw, shape):
    net = _tiny(**kw)
    out_ch = kw.get("out_channels", 1)
    out = net(torch.randn(*shape, generator=torch.Generator().manual_seed(0)), torch.arange(shape[0]).float())
    assert out.shape == (shape[0], out_ch, *shape[2:])


def test_unet_starts_as_zero_function_and_time_forms_agree():
    net = _tiny()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(net(x, torch.tensor([3.0, 3.0])), torch.zeros(2, 1, 8, 8))
    _randomise_output(net)
    assert torch.equal(net(x, 3.0), net(x, torch.tensor([3.0, 3.0])))
    assert torch.equal(net(x), net(x, 0.0))  # no time input means t = 0
    assert not torch.allclose(net(x, 3.0), net(x, 400.0))  # the time embedding reaches the output


def test_unet_batch_elements_are_independent():
    """GroupNorm and attention act per image: an image's output does not depend on the rest of the batch."""
    # float64, so that the comparison is not at the mercy of float32 summation order (which depends on batch size
    # in some BLAS kernels): a cross-batch leak would show at the 1e-3 level, rounding stays near 1e-15.
    net = _randomise_output(_tiny()).double().eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.tensor([1.0, 10.0, 100.0, 999.0], dtype=torch.float64)
    full = net(x, t)
    for i in range(4):
        torch.testing.assert_close(net(x[i:i + 1], t[i:i + 1]), full[i:i + 1], rtol=1e-10, atol=1e-12)


def test_inference_layout_changes_storage_not_values(tmp_path):
    """Channels-last weights on the CPU: same state dict, same saved bytes, outputs equal to float32 rounding."""
    net = _randomise_output(_tiny()).eval()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([2.0, 50.0, 700.0])
    before, state = net(x, t), {k: v.clone() for k, v in net.state_dict().items()}
    save_weights(net, tmp_path / "a.safetensors")
    assert inference_layout(net) is net
    convs = [p for p in net.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[-1] > 1]  # not 1x1
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    save_weights(net, tmp_path / "b.safetensors")
    assert sha256_file(tmp_path / "a.safetensors") == sha256_file(tmp_path / "b.safetensors")
    # the two layouts sum in different orders: float32 rounding (~1e-6 here; the weights are a fresh random init)
    torch.testing.assert_close(net(x, t), before, rtol=1e-4, atol=1e-5)


def test_unet_errors():
    with pytest.raises(ValueError, match="divisible"):
        UNet(image_size=30, channel_mults=(1, 2, 2))
    with pytest.raises(TypeError, match="unknown argument"):
        UNet(base_width=3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, H, W\)"):
        _tiny()(torch.zeros(1, 2, 8, 8), 0.0)


def test_timestep_embedding_closed_form_and_parameter_count():
    t = torch.tensor([0.0, 7.0])
    emb = timestep_embedding(t, 6)
    freqs = [10000 ** (-k / 3) for k in range(3)]
    expected = [[math.cos(7 * f) for f in freqs] + [math.sin(7 * f) for f in freqs]]
    torch.testing.assert_close(emb[1:], torch.tensor(expected))
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))
    lin = torch.nn.Linear(3, 2)
    assert count_parameters(lin) == 8


@pytest.mark.parametrize("parametrisation", PARAMETRISATIONS)
@pytest.mark.parametrize("alpha,sigma", [(0.6, 0.8), (0.999, 0.0447), (1.0, 30.0)])
def test_parametrisation_round_trips_exact(parametrisation, alpha, sigma):
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(2, 5, 1, 4, 4, generator=g, dtype=torch.float64)
    alpha, sigma = torch.tensor(alpha, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
    x_t = alpha * x0 + sigma * eps
    target = training_target(parametrisation, x0, eps, alpha, sigma)
    torch.testing.assert_close(output_to_x0(parametrisation, target, x_t, alpha, sigma), x0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x0_to_output(parametrisation, x0, x_t, alpha, sigma), target, rtol=1e-10, atol=1e-10)


def test_parametrisation_targets_are_the_textbook_ones():
    x0, eps = torch.tensor(2.0), torch.tensor(-1.0)
    a, s = torch.tensor(0.6), torch.tensor(0.8)
    assert float(training_target("eps", x0, eps, a, s)) == -1.0
    assert float(training_target("x0", x0, eps, a, s)) == 2.0
    assert float(training_target("v", x0, eps, a, s)) == pytest.approx(0.6 * -1.0 - 0.8 * 2.0)
    with pytest.raises(ValueError, match="parametrisation must be one of"):
        training_target("score", x0, eps, a, s)


class _Recorder(torch.nn.Module):
    """A network that returns a fixed multiple of its input and remembers what it was given."""

    def forward(self, x, t):
        self.seen = (x.clone(), t.clone())
        return 0.5 * x


@pytest.mark.parametrize("schedule", [vp_linear(50), vp_cosine(50), ve_geometric(50, 0.01, 20.0)])
def test_denoiser_input_scaling_and_output_map(schedule):
    net = _Recorder()
    den = Denoiser(net, schedule, "eps")
    x_t = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t = torch.tensor([0, 17, 49])
    out = den(x_t, t)
    alpha, sigma = schedule.alpha[t].reshape(-1, 1, 1, 1), schedule.sigma[t].reshape(-1, 1, 1, 1)
    c_in = 1 / torch.sqrt(alpha**2 + sigma**2)
    torch.testing.assert_close(net.seen[0], c_in * x_t)
    torch.testing.assert_close(net.seen[1], t.double())
    torch.testing.assert_close(out, (x_t - sigma * 0.5 * c_in * x_t) / alpha)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(3,\)"):
        den(x_t, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="parametrisation"):
        Denoiser(net, schedule, "score")
