"""The README and the ``--help`` texts as a new user meets them: every ```python block of README.md runs as
written, every ``bayesinv ...`` example (README and each command's ``--help`` examples) runs at a small size
(sizes are changed only through the command's documented flags), ``--help`` imports no torch, the committed
reports re-render without sampling, and no committed artifact embeds a machine's absolute path."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bayesinv.cli import COMMANDS, EXAMPLES, TRAIN_TARGETS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Each command's small size, through its documented flags (appended: argparse keeps the last value).
TINY_DIRAC = ["network.base_channels=8", "network.channel_mults=[1]", "network.num_res_blocks=1",
              "network.attention_resolutions=[]", "training.batch_size=2", "training.max_steps=2",
              "training.prefetch=0", "training.warmup_steps=1"]
SMALL_FLAGS = {"demo": ["--size", "tiny", "--no-progress"],
               "sample": ["--num-samples", "2", "--steps", "5", "--no-progress"],
               "train": [f"--set={item}" for item in TINY_DIRAC] + ["--no-progress"],
               "calibrate": ["--no-progress"], "audit": ["--no-progress"], "report": []}


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def cli_examples(text: str) -> list[str]:
    """Every ``bayesinv ...`` command of a Markdown text: lines of ```bash blocks (split at ``&&``, comments
    dropped) and inline code spans, with a ``.venv/bin/`` prefix removed; in order, without repeats."""
    found = []
    for block in re.findall(r"^```(?:bash|sh)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            for part in re.split(r"\s&&\s", re.split(r"\s+#\s", line)[0]):
                found.append(part.strip())
    found += re.findall(r"`([^`\n]*bayesinv [^`\n]*)`", text)
    commands = [re.sub(r"^(\.venv/bin/)", "", c) for c in found]
    commands = [c for c in commands if c.startswith("bayesinv ")]
    return list(dict.fromkeys(commands))


def is_template(command: str) -> bool:
    """A syntax summary such as ``bayesinv calibrate | audit | report`` or ``... calibration/<study>/...``."""
    return "|" in command or "<" in command


def test_readme_has_code_to_run():
    assert len(python_blocks(README)) >= 1
    commands = cli_examples(README)
    assert "bayesinv demo" in commands
    assert any(c.startswith("bayesinv sample ") for c in commands)
    assert any(c.startswith("bayesinv report calibration/") for c in commands)


def test_cli_examples_parse_and_templates_name_real_commands():
    parser = build_parser()
    for command in cli_examples(README) + [line for lines in EXAMPLES.values() for line in lines]:
        words = shlex.split(command)[1:]
        if is_template(command):
            for name in re.split(r"\s*\|\s*", command.removeprefix("bayesinv ").split(" --")[0]):
                name = name.split()[-1] if name.split()[0] == "train" else name.split()[0]
                assert name in COMMANDS or name in TRAIN_TARGETS or name == "<command>", (command, name)
            continue
        parser.parse_args(words)  # exits (fails the test) on an unknown flag or command


def test_help_shows_the_examples_that_run():
    for name in COMMANDS:
        help_text = subprocess.run([sys.executable, "-m", "bayesinv.cli", name, "--help"], capture_output=True,
                                   text=True, check=True, cwd=ROOT).stdout
        for line in EXAMPLES[name]:
            assert line in help_text, (name, line)


def test_help_imports_no_torch_and_prints_no_warnings():
    code = ("import sys\nfrom bayesinv.cli import main\n"
            "for argv in (['--help'], ['sample', '--help'], ['demo', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'pyro', 'jax', 'arviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "HEAVY []" in out.stdout and out.stderr == ""


def test_importing_the_library_prints_no_third_party_warnings():
    code = "import bayesinv.studies, bayesinv.samplers, bayesinv.demo, bayesinv.posterior as p; p._arviz()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stderr == ""


def test_sampler_names_in_the_help_are_the_registries():
    from bayesinv.cli import BASELINE_NAMES, CLI_SAMPLE_DEFAULTS, SAMPLER_NAMES
    from bayesinv.samplers import SAMPLERS
    from bayesinv.samplers.baselines import BASELINES

    assert set(SAMPLER_NAMES) == set(SAMPLERS) and set(BASELINE_NAMES) == set(BASELINES)
    assert set(CLI_SAMPLE_DEFAULTS) <= set(SAMPLERS)


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """A working directory with a copy of the committed studies (so nothing in the repository is written): what a
    clone has, without the ignored results and report arrays that a local run leaves there."""
    shutil.copytree(ROOT / "calibration", tmp_path / "calibration",
                    ignore=shutil.ignore_patterns("results", "report.safetensors"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_every_readme_block_and_cli_example_runs_at_a_small_size(fresh_clone, capsys):
    for block in python_blocks(README):
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    assert (fresh_clone / "my-study-run" / "report.html").exists()
    commands = cli_examples(README) + [line for lines in EXAMPLES.values() for line in lines]
    ran = []
    for command in dict.fromkeys(commands):
        if is_template(command):
            continue
        words = shlex.split(command)[1:]
        argv = words + SMALL_FLAGS[words[0]]
        assert main(argv) == 0, command
        ran.append(words[0])
    assert {"demo", "sample", "calibrate", "audit", "report", "train"} <= set(ran)
    out = capsys.readouterr().out
    assert "| problem | method | PSNR | 90% coverage | verdict |" in out  # the demo prints its verdict table
    assert re.search(r"phantom32-deblur: \d+ tasks without a result", out)  # audit --dry-run: the cost
    sample = fresh_clone / "sample-output" / "posterior.safetensors"
    assert sample.stat().st_mode & 0o777 == sample.with_name(sample.name + ".json").stat().st_mode & 0o777
    committed = (ROOT / "calibration" / "phantom32-deblur" / "report.html").read_text()
    rerendered = (fresh_clone / "rerendered" / "deblur.html").read_text()
    assert rerendered.count("data:image/png;base64,") == committed.count("data:image/png;base64,")
    assert "Re-rendered without the arrays" not in rerendered


def test_a_committed_report_is_not_overwritten_and_the_refusal_says_what_it_costs(fresh_clone, capsys):
    study = fresh_clone / "calibration" / "phantom32-deblur"
    before = (study / "report.html").read_bytes()
    assert main(["audit", str(study / "study.toml"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "was not made from results" in err and "--out DIR" in err and "bayesinv report" in err
    recorded = json.loads((study / "report.json").read_text())["samplers"]
    spec_tasks = re.search(r"would sample (\d+) tasks \(about (.+?) at", err)
    assert spec_tasks is not None, err
    # 100 + 100 + 3 OOD cases for the full samplers, fewer for those with max_cases (see the study.toml)
    cases = {"ddrm": 203, "unrolled": 203, "tv": 203, "langevin": 6 + 6 + 3, "dirac": 8 + 8 + 3, "dps": 2 + 2 + 2}
    assert int(spec_tasks.group(1)) == sum(cases.values())
    seconds = sum(cases[label] * s["wall_time"] for label, s in recorded.items())
    hours, minutes = divmod(round(seconds / 60), 60)
    assert spec_tasks.group(2) == (f"{hours} h {minutes} min" if hours else f"{minutes} min")
    assert (study / "report.html").read_bytes() == before and not (study / "results").exists()


@pytest.mark.parametrize("study", sorted(p.name for p in (ROOT / "calibration").iterdir() if p.is_dir()))
def test_committed_reports_rerender_from_their_json_without_sampling(study, tmp_path):
    from bayesinv.report import render_report

    source = ROOT / "calibration" / study
    out = render_report(source / "report.json", tmp_path / "report.html")
    committed, again = (source / "report.html").read_text(), out.read_text()
    assert again.count("data:image/png;base64,") == committed.count("data:image/png;base64,")
    assert "Re-rendered without the arrays" not in again
    assert json.loads(out.with_name("report.json").read_text())["samplers"].keys() == \
        json.loads((source / "report.json").read_text())["samplers"].keys()
    # the command that made it, run from the repository root
    assert re.search(rf"<code>(python benchmarks/run_calibration_studies.py {study}|bayesinv audit "
                     rf"calibration/{study}/study.toml( --no-progress)?)</code>", again), study


BASE64 = re.compile(r"[A-Za-z0-9+/=\\n]{200,}")  # embedded images, where any short string can occur by chance
ABSOLUTE = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|private|var/folders|mnt)/")


def committed_artifacts() -> list[Path]:
    globs = ["calibration/*/report.*", "notebooks/*.ipynb", "models/*/MODEL_CARD.md", "docs/**/*"]
    return sorted(p for g in globs for p in ROOT.glob(g) if p.is_file() and p.suffix != ".png")


def test_no_committed_artifact_embeds_an_absolute_path():
    files = committed_artifacts()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.name == "report.html" for p in files)
    texts = {str(p.relative_to(ROOT)): BASE64.sub("", p.read_text(errors="replace")) for p in files}
    offenders = {name: ABSOLUTE.findall(text)[:3] for name, text in texts.items() if ABSOLUTE.search(text)}
    assert not offenders, offenders
