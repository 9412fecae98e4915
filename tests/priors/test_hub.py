"""Loading committed priors: checksum verification, clear errors, no pickle, folder lookup."""

import pickle

import pytest
import torch

from bayesinv.errors import ChecksumMismatch, WeightsError
from bayesinv.priors import hub
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.networks import UNet, save_weights, write_checksums

CONFIG = """name = "tiny"
[data]
image_size = 8
[schedule]
name = "vp_cosine"
num_steps = 50
[network]
parametrisation = "x0"
base_channels = 8
channel_mults = [1, 2]
num_res_blocks = 1
attention_resolutions = []
[training]
batch_size = 2
max_steps = 1
"""


def _model(folder):
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(CONFIG)
    net = UNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(), image_size=8)
    with torch.no_grad():
        net.out.bias.fill_(0.25)
    save_weights(net, folder / "weights.safetensors", {"steps": 1})
    (folder / "MODEL_CARD.md").write_text("# tiny\n")
    write_checksums(folder)
    return folder


def test_load_prior_from_a_folder_and_by_name(tmp_path, monkeypatch):
    folder = _model(tmp_path / "models" / "tiny")
    prior = hub.load_prior(folder)
    assert isinstance(prior, DiffusionPrior) and prior.name == "tiny"
    assert prior.parametrisation == "x0" and prior.schedule.name == "vp_cosine" and prior.schedule.num_steps == 50
    assert tuple(prior.event_shape) == (1, 8, 8)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.denoise(x, 10), torch.full_like(x, 0.25))  # x0-network = output bias
    torch.testing.assert_close(hub.load_prior("tiny", root=tmp_path / "models").denoise(x, 10), prior.denoise(x, 10))
    monkeypatch.setenv("BAYESINV_MODELS", str(tmp_path / "models"))
    assert hub.models_root() == tmp_path / "models" and hub.available_models() == ["tiny"]
    assert hub.load_prior("tiny").name == "tiny"


def test_default_root_is_the_checkout_models_folder(monkeypatch):
    monkeypatch.delenv("BAYESINV_MODELS", raising=False)
    root = hub.models_root()
    assert root.name == "models" and (root.parent / "bayesinv" / "priors" / "hub.py").is_file()


def test_unknown_model_lists_the_available_ones(tmp_path):
    _model(tmp_path / "tiny")
    with pytest.raises(WeightsError, match=r"no model 'huge'.*\['tiny'\]"):
        hub.load_prior("huge", root=tmp_path)


@pytest.mark.parametrize("missing", ["weights.safetensors", "SHA256SUMS", "MODEL_CARD.md"])
def test_missing_file_is_refused(tmp_path, missing):
    folder = _model(tmp_path / "tiny")
    (folder / missing).unlink()
    with pytest.raises(WeightsError, match=missing):
        hub.load_prior(folder)


def test_checksum_mismatch_is_refused(tmp_path):
    folder = _model(tmp_path / "tiny")
    data = bytearray((folder / "weights.safetensors").read_bytes())
    data[-1] ^= 1  # flip one bit of one weight
    (folder / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="weights.safetensors: SHA-256 is"):
        hub.load_prior(folder)
    (folder / "config.toml").write_text(CONFIG.replace("vp_cosine", "vp_linear"))  # an edited config too
    write_checksums(folder, ("weights.safetensors",))
    (folder / "SHA256SUMS").write_text((folder / "SHA256SUMS").read_text() + "0" * 64 + "  config.toml\n")
    with pytest.raises(ChecksumMismatch, match="config.toml"):
        hub.verify_checksums(folder)


def test_malformed_or_incomplete_checksum_file(tmp_path):
    folder = _model(tmp_path / "tiny")
    (folder / "SHA256SUMS").write_text("abc weights.safetensors\n")
    with pytest.raises(WeightsError, match="expected '<64 hex digits>  <file name>'"):
        hub.verify_checksums(folder)
    write_checksums(folder, ("config.toml",))
    with pytest.raises(WeightsError, match="does not list weights.safetensors"):
        hub.verify_checksums(folder)


def test_a_pickle_is_never_unpickled(tmp_path):
    """A pickle posing as weights (with a matching checksum) fails to parse as safetensors; nothing runs."""
    folder = _model(tmp_path / "tiny")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(str(marker)))
    (folder / "weights.safetensors").write_bytes(payload)
    write_checksums(folder)
    with pytest.raises(Exception) as info:
        hub.load_prior(folder)
    assert not isinstance(info.value, (ChecksumMismatch, WeightsError))
    assert not marker.exists()


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pixel_range_comes_from_the_config(tmp_path):
    """``[data] pixel_range`` (default [0, 1]) reaches the prior, where samplers read their scale defaults."""
    assert hub.load_prior(_model(tmp_path / "unit")).pixel_range == (0.0, 1.0)
    folder = tmp_path / "signed"
    folder.mkdir()
    (folder / "config.toml").write_text(CONFIG.replace("[data]\n", "[data]\npixel_range = [-1, 1]\n"))
    save_weights(UNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(),
                      image_size=8), folder / "weights.safetensors")
    (folder / "MODEL_CARD.md").write_text("# signed\n")
    write_checksums(folder)
    prior = hub.load_prior(folder)
    assert prior.pixel_range == (-1.0, 1.0)
    with pytest.raises(ValueError, match="lo < hi"):
        DiffusionPrior(prior.network, prior.schedule, pixel_range=(1.0, 1.0))
