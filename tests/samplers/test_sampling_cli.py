"""``bayesinv sample``: the saved posterior is the library's sampler on the simulated measurement, with a PNG."""

from __future__ import annotations

import pytest
import torch
from matplotlib import image

from bayesinv.cli import main
from bayesinv.data import phantom_dataset
from bayesinv.posterior import Posterior
from bayesinv.samplers import sample_dps
from bayesinv.builders import make_problem, resolve_prior


@pytest.mark.slow
def test_sample_command_writes_the_library_posterior_and_a_figure(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sample", "--problem", "deblur", "--prior", "phantom-gaussian", "--sampler", "dps", "--num-samples", "3",
            "--steps", "4", "--seed", "2", "--image-index", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "posterior:" in capsys.readouterr().out
    post = Posterior.load(out / "posterior.safetensors")
    assert post.samples.shape == (3, 1, 1, 32, 32) and post.sampler == "dps" and post.settings["steps"] == 4
    truth = phantom_dataset("test", 2, 32, seed=2).images[1:2].double()
    assert torch.allclose(torch.tensor(post.extras["truth"], dtype=torch.float64), truth[0])
    # the same run through the library: simulate y with seed 2, sample with seed 3
    prior = resolve_prior("phantom-gaussian")
    problem = make_problem("deblur", image_size=32, noise_sigma=0.05, prior=prior, seed=2)
    y = problem.simulate(truth, generator=torch.Generator().manual_seed(2))
    direct = sample_dps(problem, y, num_samples=3, steps=4, generator=torch.Generator().manual_seed(3),
                        progress=False)
    assert torch.allclose(post.samples, direct.samples.to(post.samples.dtype), rtol=1e-5, atol=1e-6)
    png = image.imread(out / "posterior.png")
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 2 * png.shape[0]  # a row of panels
    assert float(png[..., :3].std()) > 0.01  # not blank


def test_sample_device_flag_runs_the_same_path_for_network_and_analytic_priors(tmp_path, capsys):
    """``--device cpu`` moves the prior (network or analytic) and the operator through ``.to`` (the path a GPU
    takes) and gives the run without the flag, bit for bit; a device this machine lacks is refused in one line
    before any work (tests/test_cli.py checks every command)."""
    for prior in ("phantom32", "phantom-gaussian"):
        runs = {}
        for label, extra in (("plain", []), ("device", ["--device", "cpu"])):
            out = tmp_path / f"{prior}-{label}"
            argv = ["sample", "--problem", "deblur", "--prior", prior, "--sampler", "ddrm", "--num-samples", "2",
                    "--steps", "3", "--out", str(out), "--no-progress", *extra]
            assert main(argv) == 0
            runs[label] = Posterior.load(out / "posterior.safetensors").samples
        assert runs["plain"].device.type == "cpu" and torch.equal(runs["plain"], runs["device"]), prior
    capsys.readouterr()
    argv = ["sample", "--problem", "deblur", "--prior", "phantom-gaussian", "--sampler", "ddrm", "--device", "meta",
            "--out", str(tmp_path / "meta"), "--no-progress"]
    assert main(argv) == 2
    assert "--device meta holds no data" in capsys.readouterr().err and not (tmp_path / "meta").exists()