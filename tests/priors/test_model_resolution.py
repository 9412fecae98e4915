"""Which model loads never depends on the working directory, and SHA256SUMS covers exactly what is read.

Each test works on temporary copies of shipped model folders.
"""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from bayesinv.errors import ShapeError, WeightsError
from bayesinv.priors import hub
from bayesinv.priors.networks.weights import write_checksums
from bayesinv.samplers.dirac_model import load_dirac


def _copy(name, dest, *, scale=None):
    """A copy of ``models/<name>`` at ``dest``; with ``scale``, every weight multiplied by it (checksums rewritten,
    so the copy is a valid, different model)."""
    shutil.copytree(hub.models_root() / name, dest)
    if scale is not None:
        weights = load_file(str(dest / "weights.safetensors"))
        save_file({k: v * scale if v.is_floating_point() else v for k, v in weights.items()},
                  str(dest / "weights.safetensors"))
        write_checksums(dest)
    return dest


def _params(prior):
    return torch.cat([p.detach().flatten() for p in prior.network.parameters()])


def test_a_model_name_never_resolves_in_the_working_directory(tmp_path, monkeypatch):
    _copy("phantom32", tmp_path / "phantom32", scale=0.5)
    monkeypatch.chdir(tmp_path)
    shipped = _params(hub.load_prior("phantom32"))
    assert hub.model_dir("phantom32") == hub.models_root() / "phantom32"
    local = _params(hub.load_prior("./phantom32"))  # a path: the local folder, as asked
    torch.testing.assert_close(local, 0.5 * shipped)
    assert torch.equal(_params(hub.load_prior(tmp_path / "phantom32")), local)
    (tmp_path / "only-here").mkdir()
    with pytest.raises(WeightsError, match=r"no model 'only-here': .* does not exist.*'\./only-here'"):
        hub.model_dir("only-here")


def test_load_dirac_by_name_ignores_a_folder_of_that_name_in_the_working_directory(tmp_path, monkeypatch):
    """``bayesinv train dirac --degradation blur`` writes ./dirac-blur32 by default; the name still means the
    shipped network."""
    _copy("dirac-blur32", tmp_path / "dirac-blur32", scale=0.0)
    monkeypatch.chdir(tmp_path)
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.full((1,), 0.5)
    by_name = load_dirac("dirac-blur32").denoiser(y, t)
    shipped = load_dirac(hub.models_root() / "dirac-blur32").denoiser(y, t)
    local = load_dirac("./dirac-blur32").denoiser(y, t)
    assert torch.equal(by_name, shipped)
    assert not torch.allclose(local, shipped)  # the zeroed copy is a different network


def test_an_edited_config_dropped_from_the_checksums_is_refused(tmp_path):
    folder = _copy("phantom32", tmp_path / "models" / "phantom32")
    config = folder / "config.toml"
    config.write_text(config.read_text().replace('parametrisation = "eps"', 'parametrisation = "x0"'))
    write_checksums(folder, ("weights.safetensors",))
    with pytest.raises(WeightsError, match="does not list config.toml"):
        hub.load_prior("phantom32", root=tmp_path / "models")
    with pytest.raises(WeightsError, match="does not list config.toml"):
        load_dirac(_dirac_without_config(tmp_path))


def _dirac_without_config(tmp_path):
    folder = _copy("dirac-inpaint32", tmp_path / "dirac")
    write_checksums(folder, ("weights.safetensors",))
    return folder


@pytest.mark.parametrize("entry,match", [
    ("/etc/hostname", "'/etc/hostname' is outside the model folder"),
    ("../outside.txt", r"'\.\./outside\.txt' is outside the model folder"),
    ("sub/../../outside.txt", "is outside the model folder"),
])
def test_checksum_entries_outside_the_folder_are_refused(tmp_path, entry, match):
    (tmp_path / "outside.txt").write_text("x")
    folder = _copy("phantom32", tmp_path / "models" / "phantom32")
    sums = folder / "SHA256SUMS"
    sums.write_text(sums.read_text() + "0" * 64 + f"  {entry}\n")
    with pytest.raises(WeightsError, match=match):
        hub.load_prior("phantom32", root=tmp_path / "models")


def test_a_link_leading_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.txt").write_text("x")
    folder = _copy("phantom32", tmp_path / "models" / "phantom32")
    (folder / "extra.txt").symlink_to(tmp_path / "outside.txt")
    sums = folder / "SHA256SUMS"
    sums.write_text(sums.read_text() + "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  extra.txt\n")
    with pytest.raises(WeightsError, match="'extra.txt' leads outside the model folder"):
        hub.verify_checksums(folder)


def test_weights_with_a_tensor_of_the_wrong_shape_name_the_tensor(tmp_path):
    folder = _copy("phantom32", tmp_path / "models" / "phantom32")
    weights = load_file(str(folder / "weights.safetensors"))
    name = next(k for k, v in weights.items() if v.ndim == 4)
    weights[name] = weights[name][:, :1].contiguous()
    save_file(weights, str(folder / "weights.safetensors"))
    write_checksums(folder)
    with pytest.raises(ShapeError, match=rf"do not fit the network: tensor {name}: "):
        hub.load_prior("phantom32", root=tmp_path / "models")
