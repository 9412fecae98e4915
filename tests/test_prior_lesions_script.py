"""benchmarks/prior_lesions.py: its sample command's chunk sharding (the sampling itself is the library's, tested there)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("prior_lesions", ROOT / "benchmarks" / "prior_lesions.py")
prior_lesions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prior_lesions)


def test_shards_split_the_chunks_and_together_write_what_one_run_writes(tmp_path, monkeypatch):
    def fake_draw(prior, setting, n, generator):  # the chunk's seed decides its content
        return torch.rand(n, 1, 2, 2, generator=generator)

    monkeypatch.setattr(prior_lesions, "draw", fake_draw)
    monkeypatch.setattr(prior_lesions, "load_model", lambda weights, device: None)
    written = {}
    for name, shards in (("whole", [(0, 1)]), ("sharded", [(1, 3), (0, 3), (2, 3)])):
        monkeypatch.setattr(prior_lesions, "CACHE", tmp_path / name)
        for shard in shards:
            args = SimpleNamespace(tag="t", setting="ddpm1000", num=450, weights=None, shard=shard, device="cpu")
            prior_lesions.cmd_sample(args)
            if shard == (1, 3):  # the first shard alone writes chunks 1 and 4 of 0..4
                assert sorted(p.name for p in (tmp_path / name / "t" / "ddpm1000").iterdir()) == [
                    "chunk0001.safetensors", "chunk0004.safetensors"]
        written[name] = {p.name: load_file(str(p))["samples"]
                         for p in sorted((tmp_path / name / "t" / "ddpm1000").iterdir())}
    assert list(written["whole"]) == [f"chunk{k:04d}.safetensors" for k in range(5)]
    assert written["whole"].keys() == written["sharded"].keys()
    for key, value in written["whole"].items():
        assert torch.equal(value, written["sharded"][key])
