"""The bad-input table: every public entry point answers bad input with a clear, named error.

Each row is ``(id, call, expected exception type, regex the message must match)``. The regex checks that
the message names the argument at fault (and, where it applies, the expected vs the given value), so a
user can fix the call without reading the source. CLI rows check the exit status and the one-line message.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.cli import main as cli_main
from bayesinv.errors import (ChecksumMismatch, DTypeError, NoDensityError, NonFiniteError, SamplerDivergence,
                             ShapeError, WeightsError)
from bayesinv.operators import Blur, Inpaint, MatrixOperator, make_operator
from bayesinv.posterior import Posterior
from bayesinv.priors import GaussianPrior, ScorePrior, vp_linear
from bayesinv.samplers import sample_ddrm, sample_dps
from bayesinv.studies import StudySpecError, parse_study, run_sampler, run_study
from bayesinv.studies.spec import load_study

SHAPE = (1, 8, 8)
F64 = torch.float64


def _blur():
    return make_operator("deblur", SHAPE, std=1.0)


def _problem(operator=None, sigma=0.1):
    prior = GaussianPrior(torch.zeros(SHAPE, dtype=F64), torch.eye(64, dtype=F64), schedule=vp_linear(50, 1e-3, 0.3))
    return InverseProblem(operator or _blur(), Gaussian(sigma), prior)


def _y(problem, fill=None):
    x = torch.zeros(1, *SHAPE, dtype=F64)
    y = problem.simulate(x, generator=torch.Generator().manual_seed(0))
    if fill is not None:
        y = y.clone()
        y.view(-1)[0] = fill
    return y


class _NaNPrior(ScorePrior):
    """A prior whose denoiser breaks at one noise level: the sampler must say at which step."""

    def _denoise(self, x_t, t):
        bad = int(t if not torch.is_tensor(t) else t.reshape(-1)[0]) < 20
        return x_t * (math.nan if bad else 0.0)


def _study_text(**overrides) -> str:
    table = {"operator": '"deblur"', "image_size": "8", "noise_sigma": "0.1"}
    table.update(overrides)
    problem = "\n".join(f"{k} = {v}" for k, v in table.items() if v is not None)
    return f"""name = "bad"
[problem]
{problem}
[prior]
name = "phantom-gaussian"
[data]
num_calibration = 2
num_test = 2
[samplers.tv]
sampler = "tv"
"""


def _parse(text: str):
    import tomllib

    return parse_study(tomllib.loads(text))


def _write(tmp: Path, text: str) -> Path:
    path = tmp / "study.toml"
    path.write_text(text)
    return path


def _model_copy(tmp: Path, damage: str) -> Path:
    """A copy of the shipped phantom32 folder under ``tmp/models`` with one kind of damage."""
    import shutil

    from bayesinv.priors.networks.weights import write_checksums

    from bayesinv.priors.hub import model_dir

    root = tmp / "models"
    folder = root / "phantom32"
    shutil.copytree(model_dir("phantom32"), folder)
    if damage == "flip a byte":
        data = bytearray((folder / "weights.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (folder / "weights.safetensors").write_bytes(bytes(data))
    elif damage == "remove":
        (folder / "SHA256SUMS").unlink()
    elif damage == "list /etc/hostname":
        (folder / "SHA256SUMS").write_text((folder / "SHA256SUMS").read_text() + "0" * 64 + "  /etc/hostname\n")
    elif damage == "unlist config":
        write_checksums(folder, ("weights.safetensors",))
    elif damage == "wrong shape":
        from safetensors.torch import load_file, save_file

        weights = load_file(str(folder / "weights.safetensors"))
        name = next(k for k, v in weights.items() if v.ndim == 4 and v.shape[1] > 1 and v.shape[-1] == 3)
        weights[name] = weights[name][:, :1].contiguous()
        save_file(weights, str(folder / "weights.safetensors"))
        write_checksums(folder)
    return root


def _load(root: Path):
    from bayesinv.priors import load_prior

    return load_prior("phantom32", root=root)


def _cli(*args) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = cli_main(list(args))
        except SystemExit as exc:  # argparse errors
            code = exc.code
    return code, err.getvalue()


ROWS = [
    # -- operators -----------------------------------------------------------------------------------
    ("unknown operator name", lambda tmp: make_operator("blurr", SHAPE), ValueError, r"must be one of .*'deblur'.*got 'blurr'"),
    ("unknown operator option", lambda tmp: make_operator("deblur", SHAPE, stdd=1.0), TypeError, r"stdd"),
    ("image of the wrong size", lambda tmp: _blur()(torch.zeros(1, 1, 16, 16, dtype=F64)), ShapeError,
     r"x must have shape \(B, 1, 8, 8\), got \(1, 1, 16, 16\)"),
    ("missing batch dimension", lambda tmp: _blur()(torch.zeros(1, 8, 8, dtype=F64)), ShapeError, r"x must have shape"),
    ("complex image into a real operator", lambda tmp: _blur()(torch.zeros(1, *SHAPE, dtype=torch.complex128)),
     DTypeError, r"x is complex"),
    ("integer image", lambda tmp: _blur()(torch.zeros(1, *SHAPE, dtype=torch.int64)), DTypeError, r"floating"),
    ("NaN in the image", lambda tmp: _blur()(torch.full((1, *SHAPE), math.nan, dtype=F64)), NonFiniteError,
     r"x contains 64 non-finite"),
    ("inf in the measurement (adjoint)", lambda tmp: _blur().adjoint(torch.full((1, *SHAPE), math.inf, dtype=F64)),
     NonFiniteError, r"y contains"),
    ("measurement of the wrong shape (pinv)", lambda tmp: _blur().pinv(torch.zeros(1, 1, 4, 4, dtype=F64)),
     ShapeError, r"y must have shape"),
    ("inpainting mask of the wrong size", lambda tmp: Inpaint(SHAPE, torch.ones(4, 4, dtype=torch.bool)),
     (ShapeError, ValueError), r"mask"),
    ("blur kernel larger than the image", lambda tmp: Blur(SHAPE, torch.ones(11, 11, dtype=F64) / 121),
     (ShapeError, ValueError), r"kernel"),
    ("MRI acceleration below 1", lambda tmp: make_operator("mri", SHAPE, acceleration=0.5), ValueError,
     r"acceleration"),
    ("matrix with the wrong number of columns", lambda tmp: MatrixOperator(torch.zeros(3, 5, dtype=F64), in_shape=SHAPE),
     ValueError, r"in_shape .* 64 elements .* n=5"),
    # -- noise and the model ---------------------------------------------------------------------------
    ("negative noise level", lambda tmp: Gaussian(-1.0), ValueError, r"sigma must be a positive"),
    ("prior and operator of different sizes",
     lambda tmp: InverseProblem(make_operator("deblur", (1, 4, 4)), Gaussian(0.1), _problem().prior), ShapeError,
     r"event shape \(1, 8, 8\) does not match the operator's in_shape \(1, 4, 4\)"),
    ("operator that is not an Operator", lambda tmp: InverseProblem("blur", Gaussian(0.1)), TypeError,
     r"operator must be an Operator"),
    ("noise that is not a noise model", lambda tmp: InverseProblem(_blur(), 0.1), TypeError, r"noise must be a NoiseModel"),
    ("real data for complex k-space",
     lambda tmp: _problem(make_operator("mri", SHAPE)).log_likelihood(torch.zeros(1, *SHAPE, dtype=F64),
                                                                   torch.zeros(1, 1, 8, 8, dtype=F64)),
     DTypeError, r"y is real .* MRI produces complex measurements"),
    # -- samplers ----------------------------------------------------------------------------------------
    ("NaN in the measurement (DPS)",
     lambda tmp: sample_dps(_problem(), _y(_problem(), math.nan), num_samples=2, steps=5,
                            generator=torch.Generator(), progress=False), NonFiniteError, r"y contains 1 non-finite"),
    ("zero samples", lambda tmp: sample_dps(_problem(), _y(_problem()), num_samples=0, steps=5,
                                           generator=torch.Generator(), progress=False), ValueError, r"num_samples"),
    ("more steps than the schedule has",
     lambda tmp: sample_dps(_problem(), _y(_problem()), num_samples=2, steps=5000, generator=torch.Generator(),
                            progress=False), ValueError, r"steps"),
    ("seed instead of a generator",
     lambda tmp: sample_dps(_problem(), _y(_problem()), num_samples=2, steps=5, generator=0, progress=False),
     TypeError, r"generator"),
    ("DDRM on an operator without SVD",
     lambda tmp: sample_ddrm(_problem(make_operator("mri_multicoil", SHAPE, num_coils=2)),
                             _y(_problem(make_operator("mri_multicoil", SHAPE, num_coils=2))), num_samples=2,
                             generator=torch.Generator(), progress=False), TypeError, r"ddrm needs .* SVD .* MultiCoilMRI has none"),
    ("sampler that diverges",
     lambda tmp: sample_dps(InverseProblem(_blur(), Gaussian(0.1), _NaNPrior(SHAPE, vp_linear(50, 1e-3, 0.3))),
                            _y(_problem()), num_samples=2, steps=50, generator=torch.Generator(), progress=False),
     SamplerDivergence, r"dps diverged at step \d+"),
    ("unknown sampler name", lambda tmp: run_sampler("dpss", _problem(), _y(_problem()), num_samples=2, steps=None,
                                                    generator=torch.Generator(), options={}),
     StudySpecError, r"unknown sampler 'dpss'.*dps"),
    # -- posteriors and weights ------------------------------------------------------------------------
    ("posterior samples without a draws axis", lambda tmp: Posterior(torch.zeros(4)), ShapeError, r"samples"),
    ("loading a posterior that does not exist", lambda tmp: Posterior.load(tmp / "missing.safetensors"),
     FileNotFoundError, r"missing"),
    ("model that does not exist", lambda tmp: _load(tmp), WeightsError, r"phantom32"),
    ("weights with a flipped byte", lambda tmp: _load(_model_copy(tmp, "flip a byte")), ChecksumMismatch,
     r"weights\.safetensors"),
    ("model folder without checksums", lambda tmp: _load(_model_copy(tmp, "remove")), WeightsError, r"SHA256SUMS"),
    ("density of a diffusion prior", lambda tmp: _load(_model_copy(tmp, "none")).log_prob(torch.zeros(1, 1, 32, 32)),
     NoDensityError, r"log_prob|density"),
    # -- studies -----------------------------------------------------------------------------------------
    ("malformed study TOML", lambda tmp: load_study(_write(tmp, "name = \n[problem")), StudySpecError, r"TOML|toml"),
    ("study without an operator", lambda tmp: _parse(_study_text(operator=None)), StudySpecError,
     r"'problem\.operator'"),
    ("study with a text image size", lambda tmp: _parse(_study_text(image_size='"big"')), StudySpecError,
     r"'problem\.image_size' must be int"),
    ("study with a negative noise level", lambda tmp: _parse(_study_text(noise_sigma="-0.1")), StudySpecError,
     r"noise_sigma' must be positive"),
    ("study file that does not exist", lambda tmp: load_study(tmp / "nope" / "study.toml"), FileNotFoundError,
     r"nope"),
    ("unwritable results folder", lambda tmp: run_study(_parse(_study_text()), tmp / "a-file" / "results",
                                                        progress=False),
     PermissionError, r"cannot write study results"),
    # -- study integrity (issue 17) --------------------------------------------------------------------
    ("misspelled sampler key", lambda tmp: _parse(_study_text() + "num_sample = 4\n"), StudySpecError,
     r"unknown key 'samplers\.tv\.num_sample'; did you mean 'samplers\.tv\.num_samples'\?"),
    ("misspelled section", lambda tmp: _parse(_study_text() + "[diagnostic]\nalpha = 0.1\n"), StudySpecError,
     r"unknown key 'diagnostic'; did you mean 'diagnostics'\?"),
    ("NaN lesion threshold", lambda tmp: _parse(_study_text() + "[diagnostics]\nlesion_threshold = nan\n"),
     StudySpecError, r"'diagnostics\.lesion_threshold' must be a finite number, got nan"),
    ("sampler labelled 'cases'", lambda tmp: _parse(_study_text().replace("[samplers.tv]", "[samplers.cases]")),
     StudySpecError, r"'samplers\.cases' is reserved"),
    ("text for an integer option",
     lambda tmp: _parse(_study_text() + "[samplers.tv.options]\nmax_iter = \"10\"\n"), StudySpecError,
     r"tv: option 'max_iter' must be int or None, got str '10'"),
    ("spec error names the file", lambda tmp: load_study(_write(tmp, _study_text() + "sed = 1\n")), StudySpecError,
     r"study spec .*study\.toml: unknown key 'samplers\.tv\.sed'"),
    ("checksum entry outside the model folder", lambda tmp: _load(_model_copy(tmp, "list /etc/hostname")),
     WeightsError, r"'/etc/hostname' is outside the model folder"),
    ("config missing from the checksums", lambda tmp: _load(_model_copy(tmp, "unlist config")), WeightsError,
     r"does not list config\.toml"),
    ("weights tensor of the wrong shape", lambda tmp: _load(_model_copy(tmp, "wrong shape")), ShapeError,
     r"do not fit the network: tensor .*: \(\d+, 1, 3, 3\) \(network: "),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_gives_a_clear_error(row, tmp_path):
    _, call, kind, pattern = row
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(kind, match=pattern):
        call(tmp_path)


CLI_ROWS = [
    ("unknown problem", ["sample", "--problem", "nope", "--prior", "phantom-gaussian", "--no-progress"], r"nope"),
    ("missing study", ["calibrate", "missing/study.toml", "--no-progress"], r"missing"),
    ("report without analysis", ["report", "no-such-results"], r"no-such-results|no analysis"),
    ("sampler option it does not take", ["sample", "--problem", "inpaint", "--prior", "phantom-gaussian",
                                         "--sampler", "dps", "--option", "zeta=1", "--no-progress"],
     r"dps has no option 'zeta'; its options: .*guidance_scale"),
    ("malformed option", ["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--option", "1x",
                          "--no-progress"], r"KEY=VALUE"),
]


@pytest.mark.parametrize("row", CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_cli_reports_bad_input_in_one_line(row, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, args, pattern = row
    code, err = _cli(*args)
    assert code == 2
    assert err.startswith(f"bayesinv {args[0]}: error:") and "Traceback" not in err
    import re

    assert re.search(pattern, err), err


# -- the integrity table (issue 17): expected failures of the command line, one line each, exit status 2 -------
_SAMPLE = ["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--no-progress"]

CLI_INTEGRITY_ROWS = [
    ("option of the wrong type", _SAMPLE + ["--sampler", "ddrm", "--option", 'eta="0.5"'],
     r"ddrm: option 'eta' must be float, got str '0\.5'"),
    ("boolean for a number", _SAMPLE + ["--sampler", "ddrm", "--option", "eta=true"],
     r"ddrm: option 'eta' must be float, got bool True"),
    ("DDRM on multi-coil MRI", ["sample", "--problem", "mri_multicoil", "--prior", "phantom-gaussian", "--sampler",
                                "ddrm", "--num-samples", "2", "--no-progress"], r"ddrm needs .*SVD.*MultiCoilMRI"),
    ("negative image index", _SAMPLE + ["--image-index", "-1"], r"--image-index must be in \[0, 9999\].*got -1"),
    ("a million phantoms", _SAMPLE + ["--image-index", "1000000"], r"--image-index must be in \[0, 9999\].*1000000"),
    ("more samples than memory", _SAMPLE + ["--num-samples", "1000000000"],
     r"--num-samples 1000000000 needs at least [\d.]+ GiB .* more than this machine's"),
    ("zero samples on the command line", _SAMPLE + ["--num-samples", "0"], r"--num-samples must be >= 1, got 0"),
    ("--out on an existing file", _SAMPLE + ["--out", "a-file"], r"--out a-file is an existing file; give a folder"),
    ("unknown prior name", _SAMPLE[:3] + ["--prior", "phantom33", "--no-progress"], r"no model 'phantom33'"),
    ("model name in the working directory", _SAMPLE[:3] + ["--prior", "local-model", "--no-progress"],
     r"no model 'local-model': .* does not exist.*'\./local-model'"),
    ("report of a folder without analysis", ["report", "."], r"no analysis in"),
]


@pytest.mark.parametrize("row", CLI_INTEGRITY_ROWS, ids=[r[0] for r in CLI_INTEGRITY_ROWS])
def test_cli_integrity_rows(row, tmp_path, monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "local-model").mkdir()
    (tmp_path / "local-model" / "config.toml").write_text("")
    _, args, pattern = row
    code, err = _cli(*args)
    assert code == 2, err
    assert err.startswith(f"bayesinv {args[0]}: error:") and "Traceback" not in err
    assert err.count("\n") == 1  # one line
    assert re.search(pattern, err), err
    assert not list(tmp_path.rglob("*.tmp"))
