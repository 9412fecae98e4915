"""The ``bayesinv sample`` command line: sampler options reach the sampler and are recorded."""

from __future__ import annotations

import json
import os

import pytest

from bayesinv.cli import main, parse_options
from tests.studies.helpers import tiny_study_toml


def test_options_are_toml_values():
    options = parse_options(["guidance_scale=1.5", "noise_levels=[20, 0.01]", "variant='do'", "flag=true",
                             "name=plain"])
    assert options == {"guidance_scale": 1.5, "noise_levels": (20, 0.01), "variant": "do", "flag": True,
                       "name": "plain"}


def test_sample_passes_options_to_the_sampler(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--sampler", "score_sde",
                 "--num-samples", "2", "--steps", "3", "--option", "cutoff=0.25", "--option", "snr=0.1",
                 "--no-progress", "--out", "run"])
    assert code == 0
    settings = json.loads((tmp_path / "run" / "posterior.safetensors.json").read_text())["settings"]
    assert settings["cutoff"] == 0.25 and settings["snr"] == 0.1 and settings["steps"] == 3


def test_sample_runs_dirac_po_and_do_on_the_shipped_network(tmp_path, monkeypatch):
    """``bayesinv sample --sampler dirac`` picks models/dirac-blur32 for phantom32 deblurring; the variant is an option."""
    monkeypatch.chdir(tmp_path)
    for variant in ("po", "do"):
        code = main(["sample", "--problem", "deblur", "--sampler", "dirac", "--num-samples", "2", "--no-progress",
                     "--option", f"variant='{variant}'", "--out", variant])
        assert code == 0
        meta = json.loads((tmp_path / variant / "posterior.safetensors.json").read_text())
        assert meta["settings"]["variant"] == variant and meta["sampler"] == "dirac"
        assert (tmp_path / variant / "posterior.png").stat().st_size > 0


TINY_DIRAC = ["network.base_channels=8", "network.channel_mults=[1]", "network.num_res_blocks=1",
              "network.attention_resolutions=[]", "training.batch_size=2", "training.max_steps=2",
              "training.prefetch=0", "training.warmup_steps=1"]


def test_train_dirac_from_the_shipped_recipe_with_overrides(tmp_path, monkeypatch):
    """``bayesinv train dirac --degradation inpaint --set training.lookahead=0.1``: the shipped recipe with the
    incremental loss, written to ./dirac-inpaint32 with the config it was trained with; models/ is untouched."""
    import tomllib

    from bayesinv.priors.hub import models_root

    shipped = (models_root() / "dirac-inpaint32" / "SHA256SUMS").read_text()
    monkeypatch.chdir(tmp_path)
    argv = ["train", "dirac", "--degradation", "inpaint", "--no-progress", "--set", "training.lookahead=0.1"]
    assert main(argv + [f"--set={item}" for item in TINY_DIRAC]) == 0
    cfg = tomllib.loads((tmp_path / "dirac-inpaint32" / "config.toml").read_text())
    assert cfg["training"]["lookahead"] == 0.1 and cfg["network"]["channel_mults"] == [1]
    assert cfg["degradation"]["kind"] == "inpaint"  # the rest is the shipped recipe
    info = json.loads((tmp_path / "dirac-inpaint32" / "train_info.json").read_text())
    assert info["steps"] == 2
    assert (models_root() / "dirac-inpaint32" / "SHA256SUMS").read_text() == shipped


def test_train_refuses_bad_overrides_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "dirac", "--degradation", "blur", "--set", "trainig.lookahead=0.1"]) == 2
    assert "no [trainig] section" in capsys.readouterr().err
    config = str(tmp_path / "missing.toml")
    assert main(["train", "prior", "--config", config, "--set", "training.max_steps=1"]) == 2
    assert "give --out" in capsys.readouterr().err
    assert not (tmp_path / "dirac-blur32").exists()


# -- expected failures: one line naming the file, key or argument; exit status 2; --debug shows the traceback --

STUDY = tiny_study_toml(3, 4)


def _run(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _one_line(err: str, command: str) -> None:
    assert err.startswith(f"bayesinv {command}: error:") and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-study")
    (folder / "study.toml").write_text(STUDY)
    assert main(["calibrate", str(folder), "--no-progress"]) == 0
    return folder


def _copy_study(study, tmp_path):
    import shutil

    shutil.copytree(study, tmp_path / "s")
    return tmp_path / "s"


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--image-index", "-1"]
    code, err = _run(argv, capsys)
    assert code == 2
    _one_line(err, "sample")
    with pytest.raises(ValueError, match="--image-index must be in"):
        main(["--debug"] + argv)
    with pytest.raises(ValueError, match="--image-index must be in"):
        main(argv + ["--debug"])


def test_full_disk_while_sampling_names_the_folder_and_leaves_no_tmp(tmp_path, monkeypatch, capsys):
    import errno

    import bayesinv.posterior

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bayesinv.posterior, "save_file", full)
    code, err = _run(["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--sampler", "exact",
                      "--num-samples", "2", "--no-progress", "--out", "run"], capsys)
    assert code == 2
    _one_line(err, "sample")
    assert "cannot write run: [Errno 28] No space left on device" in err
    assert not list(tmp_path.rglob("*.tmp"))


def test_unwritable_out_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    code, err = _run(["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--sampler", "exact",
                      "--num-samples", "2", "--no-progress", "--out", "a-file/run"], capsys)
    assert code == 2
    _one_line(err, "sample")
    assert "a-file" in err


def test_read_only_out_is_one_line(tmp_path, monkeypatch, capsys):
    import errno
    import pathlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes into read-only folders: have the file system refuse as it would a user
        original = pathlib.Path.mkdir

        def refuse(self, *args, **kwargs):
            if "ro" in self.parts:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    code, err = _run(["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--sampler", "exact",
                      "--num-samples", "2", "--no-progress", "--out", "ro/run"], capsys)
    assert code == 2
    _one_line(err, "sample")
    assert "Permission denied" in err and "ro/run" in err


def test_weights_with_a_tensor_of_the_wrong_shape(tmp_path, monkeypatch, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    from bayesinv.priors.hub import models_root
    from bayesinv.priors.networks.weights import write_checksums

    folder = tmp_path / "broken"
    shutil.copytree(models_root() / "phantom32", folder)
    weights = load_file(str(folder / "weights.safetensors"))
    name = next(k for k, v in weights.items() if v.ndim == 4)
    weights[name] = weights[name][:1].contiguous()
    save_file(weights, str(folder / "weights.safetensors"))
    write_checksums(folder)
    monkeypatch.chdir(tmp_path)
    code, err = _run(["sample", "--problem", "deblur", "--prior", "./broken", "--num-samples", "2",
                      "--no-progress"], capsys)
    assert code == 2
    _one_line(err, "sample")
    assert f"weights broken/weights.safetensors do not fit the network: tensor {name}" in err


def test_report_of_a_broken_analysis(study, tmp_path, capsys):
    folder = _copy_study(study, tmp_path)
    results = folder / "results"
    data = (results / "analysis.safetensors").read_bytes()
    (results / "analysis.safetensors").write_bytes(data[: len(data) // 2])
    code, err = _run(["report", str(results)], capsys)
    assert code == 2
    _one_line(err, "report")
    assert f"{results / 'analysis.safetensors'}" in err
    analysis = json.loads((results / "analysis.json").read_text())
    del analysis["main_level"]
    (results / "analysis.json").write_text(json.dumps(analysis))
    (results / "analysis.safetensors").write_bytes(data)
    code, err = _run(["report", str(results)], capsys)
    assert code == 2
    _one_line(err, "report")
    assert f"{results / 'analysis.json'} lacks 'main_level'" in err
    (results / "analysis.json").write_text('{"study": ')
    code, err = _run(["report", str(results)], capsys)
    assert code == 2 and f"{results / 'analysis.json'} is not valid JSON" in err
    assert not list(folder.rglob("*.tmp"))


def test_report_on_a_full_disk_leaves_no_tmp(study, tmp_path, monkeypatch, capsys):
    import errno
    import pathlib

    folder = _copy_study(study, tmp_path)
    def filling(original):  # writes a few bytes of a .tmp file, then the disk is full
        def full(self, data, *args, **kwargs):
            if self.name.endswith(".tmp"):
                original(self, data[:10])
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(self, data, *args, **kwargs)
        return full

    monkeypatch.setattr(pathlib.Path, "write_text", filling(pathlib.Path.write_text))
    monkeypatch.setattr(pathlib.Path, "write_bytes", filling(pathlib.Path.write_bytes))
    code, err = _run(["report", str(folder / "results"), "--out", str(tmp_path / "out" / "r.html")], capsys)
    assert code == 2
    _one_line(err, "report")
    assert "No space left on device" in err and str(tmp_path / "out") in err
    assert not list(tmp_path.rglob("*.tmp"))


def test_calibrate_after_a_spec_edit_and_with_no_recompute(study, tmp_path, capsys):
    folder = _copy_study(study, tmp_path)
    (folder / "study.toml").write_text(STUDY.replace("num_samples = 4", "num_samples = 3"))
    code, err = _run(["calibrate", str(folder), "--no-progress", "--no-recompute"], capsys)
    assert code == 2
    _one_line(err, "calibrate")
    assert "do not match the spec" in err and "--no-recompute" in err
    assert main(["calibrate", str(folder), "--no-progress"]) == 0
    assert json.loads((folder / "report.json").read_text())["samplers"]["exact"]["num_samples"] == 3


def test_calibrate_with_a_bad_spec_names_the_file_and_key(tmp_path, capsys):
    bad = STUDY + '[samplers.tv]\nsampler = "tv"\n[samplers.tv.options]\nmax_iter = "10"\n'
    (tmp_path / "study.toml").write_text(bad)
    code, err = _run(["calibrate", str(tmp_path), "--no-progress"], capsys)
    assert code == 2
    _one_line(err, "calibrate")
    assert f"{tmp_path / 'study.toml'}: 'samplers.tv.options': tv: option 'max_iter' must be int or None" in err
    (tmp_path / "study.toml").write_text(STUDY.replace("num_samples", "num_sample"))
    code, err = _run(["calibrate", str(tmp_path), "--no-progress"], capsys)
    assert "did you mean 'samplers.exact.num_samples'?" in err


def test_calibrate_of_a_folder_in_use_names_the_process(study, tmp_path, capsys):
    import subprocess
    import sys

    folder = _copy_study(study, tmp_path)
    hold = ("import sys, time\nfrom bayesinv.studies.lock import study_lock\nwith study_lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen([sys.executable, "-c", hold, str(folder / "results")], stdout=subprocess.PIPE, text=True,
                          env=env) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            code, err = _run(["calibrate", str(folder), "--no-progress"], capsys)
        finally:
            holder.kill()
    assert code == 2
    _one_line(err, "calibrate")
    assert f"in use by process {holder.pid}" in err


def _missing_devices() -> list[tuple[str, str]]:
    """Device names this machine cannot use, with the words of the refusal."""
    import torch

    cuda = (f"cuda:{torch.cuda.device_count()}", "CUDA device(s)") if torch.cuda.is_available() else \
        ("cuda", "CUDA is not available")
    return [cuda, ("gpu", "'gpu' is not a torch device"), ("meta", "meta holds no data")]


@pytest.mark.parametrize("command", ["calibrate", "audit", "demo", "sample", "train"])
@pytest.mark.parametrize("device, words", _missing_devices())
def test_a_device_this_machine_lacks_is_refused_in_one_line_before_any_work(command, device, words, tmp_path,
                                                                              monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.toml").write_text(STUDY)
    argv = {"calibrate": ["calibrate", "study", "--out", "out"], "audit": ["audit", "study", "--out", "out"],
            "demo": ["demo", "--size", "tiny", "--out", "out"],
            "sample": ["sample", "--problem", "denoise", "--prior", "phantom-gaussian", "--out", "out"],
            "train": ["train", "prior", "--config", "missing.toml", "--out", "out"]}[command]
    code, err = _run(argv + ["--device", device, "--no-progress"], capsys)
    assert code == 2
    _one_line(err, command)
    assert f"--device {device}" in err or f"--device '{device}'" in err
    assert words in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "study" / "results").exists()


def test_calibrate_on_a_device_gives_the_same_files_and_resumes_a_study_made_without_one(study, tmp_path, capsys):
    """``--device cpu`` sends the spec's problem through ``.to`` and every task through the device path (what a
    GPU takes): the results equal those of the run without the flag bit for bit; on a finished study it
    recomputes nothing (the device is not part of any hash)."""
    from safetensors.torch import load_file

    folder = _copy_study(study, tmp_path)
    files = sorted((folder / "results" / "exact").glob("*.safetensors"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    assert main(["calibrate", str(folder), "--no-progress", "--device", "cpu"]) == 0
    assert files and {f: f.stat().st_mtime_ns for f in files} == stamps
    for f in files:
        f.unlink()
    assert main(["calibrate", str(folder), "--no-progress", "--device", "cpu"]) == 0
    for f in files:
        again, before = load_file(str(f))["samples"], load_file(str(study / "results" / "exact" / f.name))["samples"]
        assert again.device.type == "cpu" and again.equal(before), f.name
