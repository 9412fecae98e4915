"""Training: the exact loss, phantom batches, determinism, resumption identical to an uninterrupted run."""

import copy
import json

import pytest
import torch

from bayesinv.data.phantoms import phantom_dataset
from bayesinv.priors.networks import Denoiser, UNet, load_weights, sha256_file
from bayesinv.priors.schedules import vp_linear
from bayesinv.training.loop import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, train_loop
from bayesinv.training.prior import diffusion_loss, read_config, train_from_config
from bayesinv.training.run import phantom_batches

TINY = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), image_size=8)


def _denoiser(parametrisation="eps", dropout=0.0):
    net = UNet(**TINY, dropout=dropout)
    with torch.no_grad():  # a non-zero output layer so that gradients reach every weight from step 0
        net.out.weight.copy_(0.05 * torch.randn(net.out.weight.shape, generator=torch.Generator().manual_seed(0)))
    return Denoiser(net, vp_linear(100), parametrisation)


def _batches(step):
    return phantom_dataset("train", 4, 8, seed=step).images


def _run(model, steps, **kw):
    opts = dict(steps=steps, lr=1e-3, ema_decay=0.9, seed=7, progress=False, prefetch=0)
    opts.update(kw)
    return train_loop(model, diffusion_loss, _batches, **opts)


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("parametrisation", ["eps", "x0", "v"])
def test_diffusion_loss_is_the_mse_to_the_target(parametrisation):
    """With a zero network the loss is the mean square of the target, drawn from the same generator stream."""
    den = Denoiser(UNet(**TINY), vp_linear(100), parametrisation)  # zero-initialised output layer
    x0 = _batches(0)
    loss = diffusion_loss(den, x0, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 100, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    alpha, sigma = den.schedule.coefficients(t, x0)
    target = {"eps": eps, "x0": x0, "v": alpha * eps - sigma * x0}[parametrisation]
    torch.testing.assert_close(loss, (target**2).mean())


def test_phantom_batches_are_the_train_split_by_step():
    sample = phantom_batches(3, 16, lesion_prob=0.5, data_seed=10)
    torch.testing.assert_close(sample(4), phantom_dataset("train", 3, 16, seed=14, lesion_prob=0.5).images,
                               rtol=0, atol=0)
    assert not torch.equal(sample(4), sample(5))
    with pytest.raises(ValueError, match="overlap the calibration/test splits"):
        phantom_batches(3, 16, data_seed=1_000_000)(3)


def test_training_is_deterministic_given_the_seed_and_learns():
    init = _denoiser()
    a = _run(copy.deepcopy(init), 4)
    b = _run(copy.deepcopy(init), 4)
    c = _run(copy.deepcopy(init), 4, seed=8)
    assert a.losses == b.losses and len(a.losses) == 4
    assert _states_equal(a.model, b.model) and _states_equal(a.ema, b.ema)
    assert a.losses != c.losses
    assert not _states_equal(a.model, init)


def test_prefetching_threads_do_not_change_the_result():
    init = _denoiser()
    a = _run(copy.deepcopy(init), 3, prefetch=0)
    b = _run(copy.deepcopy(init), 3, prefetch=2)
    assert a.losses == b.losses and _states_equal(a.model, b.model)


def test_dropout_is_deterministic_and_leaves_the_global_rng_alone():
    init = _denoiser(dropout=0.3)
    before = torch.random.get_rng_state()
    a = _run(copy.deepcopy(init), 2)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = _run(copy.deepcopy(init), 2)
    assert a.losses == b.losses and _states_equal(a.model, b.model)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    init = _denoiser()
    full = _run(copy.deepcopy(init), 6, checkpoint_dir=tmp_path / "full", checkpoint_every=100)
    first = _run(copy.deepcopy(init), 3, checkpoint_dir=tmp_path / "split")
    assert first.steps == 3 and (tmp_path / "split" / CHECKPOINT_NAME).exists()
    other_init = _denoiser()  # the checkpoint overrides whatever the model held
    with torch.no_grad():
        for p in other_init.parameters():
            p.add_(1.0)
    resumed = _run(other_init, 6, checkpoint_dir=tmp_path / "split")
    assert resumed.steps == 6 and resumed.losses == full.losses
    assert _states_equal(resumed.model, full.model) and _states_equal(resumed.ema, full.ema)
    log = (tmp_path / "split" / "loss.csv").read_text().splitlines()
    assert log[0] == "step,loss" and len(log) == 7
    fresh = _run(copy.deepcopy(init), 6, checkpoint_dir=tmp_path / "split", resume=False)  # --no-resume: over
    assert fresh.losses == full.losses


def test_checkpoint_round_trip_restores_optimizer_state(tmp_path):
    res = _run(_denoiser(), 2)
    opt = torch.optim.AdamW(res.model.parameters(), lr=1e-3)
    res.model(torch.zeros(1, 1, 8, 8), 0).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c.safetensors", res.model, res.ema, opt, 2, 1.5)
    model2, ema2 = _denoiser(), _denoiser()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.5)
    assert load_checkpoint(tmp_path / "c.safetensors", model2, ema2, opt2) == (2, 1.5)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name, value in s1["state"][k].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][k][name]))
    assert _states_equal(model2, res.model) and _states_equal(ema2, res.ema)


def test_max_minutes_stops_early_and_loop_checks_arguments():
    res = _run(_denoiser(), 5, max_minutes=0.0)
    assert res.steps == 1 and res.stopped_by == "max_minutes" and len(res.losses) == 1
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        _run(_denoiser(), -1)
    with pytest.raises(ValueError, match="ema_decay must be in"):
        _run(_denoiser(), 1, ema_decay=1.0)


CONFIG = """
name = "tiny"
[data]
image_size = 8
lesion_prob = 0.5
[schedule]
name = "vp_linear"
num_steps = 100
[network]
parametrisation = "v"
base_channels = 8
channel_mults = [1, 2]
num_res_blocks = 1
attention_resolutions = [4]
[training]
batch_size = 4
lr = 1e-3
ema_decay = 0.9
max_steps = 2
seed = 3
prefetch = 0
"""


def test_train_from_config_writes_verified_weights(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    weights = train_from_config(tmp_path / "config.toml", device="cpu", progress=False)
    assert weights == tmp_path / "weights.safetensors"
    info = json.loads((tmp_path / "train_info.json").read_text())
    assert info["steps"] == 2 and info["stopped_by"] == "steps" and info["parameters"] > 0
    sums = dict(line.split()[::-1] for line in (tmp_path / "SHA256SUMS").read_text().splitlines())
    assert sums == {"weights.safetensors": sha256_file(weights), "config.toml": sha256_file(tmp_path / "config.toml")}
    net = UNet(**TINY)
    meta = load_weights(net, weights)
    assert meta == {"name": "tiny", "steps": 2}
    assert len((tmp_path / "loss.csv").read_text().splitlines()) == 3
    with pytest.raises(ValueError, match="target 'prior'"):
        train_from_config(tmp_path / "config.toml", target="dirac")


def test_read_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_config(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match=r"missing section\(s\) \['training'\]"):
        read_config({"data": {}, "schedule": {}, "network": {}})
