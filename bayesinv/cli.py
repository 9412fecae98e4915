"""The ``bayesinv`` command line: ``bayesinv <command> --help`` for each command.

Commands are registered in :data:`COMMANDS` (name -> (help, add_arguments, run)); each ``run``
imports what it needs lazily, so ``bayesinv --help`` and ``bayesinv <command> --help`` import neither
torch nor pyro (``tests/test_readme.py`` checks this in a fresh interpreter). The examples in each
command's ``--help`` (:data:`EXAMPLES`) run in ``tests/test_readme.py`` at a small size.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main", "COMMANDS", "EXAMPLES", "SAMPLER_NAMES", "CLI_SAMPLE_DEFAULTS"]

EXAMPLES: dict[str, list[str]] = {
    # command -> example lines shown under "examples:" in its --help (each one runs in tests/test_readme.py)
    "demo": ["bayesinv demo", "bayesinv demo --size tiny --out demo-tiny"],
    "sample": ["bayesinv sample --problem deblur --sampler ddrm --num-samples 16",
               "bayesinv sample --problem deblur --sampler score_sde --num-samples 16 --option cutoff=0.3",
               "bayesinv sample --problem inpaint --sampler dps --steps 1000 --out dps-1000"],
    "calibrate": ["bayesinv calibrate my-study/study.toml --out my-study-run"],
    "audit": ["bayesinv audit calibration/phantom32-deblur/study.toml --dry-run",
              "bayesinv audit my-study/study.toml --out my-study-run"],
    "report": ["bayesinv report calibration/phantom32-deblur --out deblur-report.html"],
    "train": ["bayesinv train dirac --degradation blur --set training.lookahead=0.1"],
}

# The registry names of bayesinv.samplers.SAMPLERS and bayesinv.samplers.baselines.BASELINES, listed here so
# that --help needs no torch (tests/test_readme.py checks that they match the registries).
SAMPLER_NAMES = ("dps", "ddrm", "score_sde", "annealed_langevin", "ula", "pnp_ula", "mala", "smc", "dirac",
                 "split_gibbs", "split_gibbs_smc")
BASELINE_NAMES = ("minnorm", "tikhonov", "tv", "wavelet_l1", "pnp_admm", "unrolled", "csgm")

# One-shot `bayesinv sample` runs use these settings unless --steps / --option say otherwise, so that a run
# finishes in minutes on 2 CPU cores; the papers' step counts are the samplers' own defaults (--steps 1000).
CLI_SAMPLE_DEFAULTS: dict[str, dict] = {
    "dps": {"steps": 100},  # DPS's paper: 1000
    "score_sde": {"steps": 50},  # Song et al. 2022: 1000 (x 1 corrector step)
    "smc": {"steps": 25},  # default: every one of the schedule's 1000 steps
    "annealed_langevin": {"steps": 10, "steps_per_level": 10},  # Song & Ermon 2019: 10 x 100
}


def _examples(name: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name])


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantom, noise and samplers")
    p.add_argument("--size", choices=["tiny", "small", "full"], default="small",
                   help="study size: tiny (a smoke test), small (the README's demo), full")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_device(p)


DEVICE_HELP = ("torch device for the operator, the prior (network or analytic) and the chains, e.g. cuda or cuda:1 "
               "(default: cpu); results are written from the CPU, the same files on every device")


def _add_device(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + note)


def check_device_arg(args: argparse.Namespace) -> None:
    """Refuse, before any work, a ``--device`` torch does not know or this machine does not have (one line)."""
    from bayesinv._validation import check_device

    check_device(args.device, "--device")


def _run_demo(args: argparse.Namespace) -> int:
    check_device_arg(args)
    if not args.no_progress:
        print(f"bayesinv demo: {args.size} size, writing to {args.out}/; loading torch and the phantom32 prior ...",
              file=sys.stderr, flush=True)
    from bayesinv.demo import run_demo

    path = run_demo(args.out, seed=args.seed, size=args.size, progress=not args.no_progress,
                    command=args.command_line, device=args.device)
    print(path.with_name("verdicts.md").read_text(), end="")
    print(f"report: {path}")
    return 0


TRAIN_TARGETS: dict[str, tuple[str, str]] = {
    # target -> (module exposing ``train_from_config(config, out_dir=None, device="cpu", resume=True) -> Path``, help)
    "prior": ("bayesinv.training.prior", "a diffusion prior (models/phantom32/config.toml)"),
    "dirac": ("bayesinv.training.dirac", "a Dirac incremental-reconstruction network"),
    "unrolled": ("bayesinv.training.baselines", "an unrolled reconstruction network"),
    "csgm": ("bayesinv.training.baselines", "the CSGM decoder (a small VAE)"),
}


DIRAC_RECIPES = {"blur": "dirac-blur32", "inpaint": "dirac-inpaint32"}  # --degradation -> shipped model folder


def _add_train(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True)
    for target, (_, help_text) in TRAIN_TARGETS.items():
        q = sub.add_parser(target, help=f"train {help_text} from a config TOML (models/<name>/config.toml)")
        source = q.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", help="path to the config TOML")
        if target == "dirac":
            source.add_argument("--degradation", choices=list(DIRAC_RECIPES),
                                help="start from the shipped recipe models/dirac-<degradation>32/config.toml "
                                     "(default --out: ./dirac-<degradation>32, the shipped model is left alone)")
        q.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                       help="override a config value (TOML), repeatable: e.g. training.max_steps=500"
                            + (", training.lookahead=0.1 (the incremental-reconstruction loss; 1.0 is the x0 loss)"
                               if target == "dirac" else ""))
        q.add_argument("--out", default=None, help="output folder (default: the config's folder)")
        q.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
        q.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def apply_overrides(cfg: dict, items: Sequence[str]) -> dict:
    """Set ``section.key`` (or a top-level ``key``) of a config to the TOML value of each ``SECTION.KEY=VALUE``;
    unknown sections are an error, so a typo does not train a different model silently."""
    for item in items:
        dotted, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set needs SECTION.KEY=VALUE, got {item!r}")
        *sections, key = dotted.strip().split(".")
        table = cfg
        for name in sections:
            if not isinstance(table.get(name), dict):
                raise ValueError(f"--set {item!r}: the config has no [{'.'.join(sections)}] section "
                                 f"(sections: {sorted(k for k, v in cfg.items() if isinstance(v, dict))})")
            table = table[name]
        table[key] = toml_value(value)
    return cfg


def _run_train(args: argparse.Namespace) -> int:
    import importlib

    check_device_arg(args)
    module = importlib.import_module(TRAIN_TARGETS[args.what][0])
    config, out = args.config, args.out
    if getattr(args, "degradation", None):
        from bayesinv.priors.hub import models_root

        config = models_root() / DIRAC_RECIPES[args.degradation] / "config.toml"
        out = out if out is not None else DIRAC_RECIPES[args.degradation]
    if args.overrides:
        if out is None:
            raise ValueError("--set changes the config: give --out, so that the config file stays as it is")
        config = apply_overrides(module.read_config(config), args.overrides)
    path = module.train_from_config(config, out_dir=out, device=args.device, resume=not args.no_resume,
                                    target=args.what, progress=not args.no_progress)
    print(f"weights: {path}")
    return 0


def _add_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", required=True, help="operator name, e.g. deblur, inpaint, mri, superres, denoise")
    p.add_argument("--prior", default="phantom32", help="model name under models/ (default: phantom32)")
    p.add_argument("--sampler", default="dps", metavar="NAME",
                   help=f"a sampler ({', '.join(SAMPLER_NAMES)}) or a baseline ({', '.join(BASELINE_NAMES)}); "
                        "default: dps")
    p.add_argument("--num-samples", type=int, default=16, help="posterior samples (chains)")
    p.add_argument("--steps", type=int, default=None,
                   help="sampler steps; default: "
                        + ", ".join(f"{k} {v['steps']}" for k, v in CLI_SAMPLE_DEFAULTS.items())
                        + " (annealed_langevin: 10 levels x steps_per_level=10), so that a run takes minutes on 2 CPU "
                          "cores; else the sampler's own (the paper's). The papers' counts: e.g. --steps 1000")
    p.add_argument("--noise-sigma", type=float, default=0.05, help="Gaussian measurement noise std")
    p.add_argument("--image-index", type=int, default=0, help="which held-out test phantom to reconstruct")
    p.add_argument("--seed", type=int, default=0, help="seed of the measurement and the sampler")
    _add_device(p)
    p.add_argument("--out", default="sample-output", help="output folder: posterior.safetensors (+.json) and PNG")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a sampler keyword argument as a TOML value, repeatable: e.g. --option guidance_scale=1.0 "
                        "--option 'noise_levels=[20, 0.01]'")


def toml_value(text: str):
    """The TOML value of ``text`` (number, boolean, array, quoted string), or ``text`` itself as a plain string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_options(items: Sequence[str]) -> dict:
    """``["key=value", ...]`` -> ``{key: value}`` with :func:`toml_value` values (arrays as tuples)."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--option needs KEY=VALUE with KEY a Python name, got {item!r}")
        options[key] = toml_value(value)
        if isinstance(options[key], list):
            options[key] = tuple(options[key])
    return options


MAX_IMAGE_INDEX = 9_999  # held-out phantoms are generated in order: index i costs i + 1 phantoms (~1 ms each)


def _prior_image_size(prior: str) -> int:
    """The image size of a prior, read from its config without loading the weights (32 for phantom-gaussian)."""
    if prior == "phantom-gaussian":
        return 32
    import tomllib

    from bayesinv.priors.hub import resolve_model

    config = resolve_model(prior) / "config.toml"
    try:
        return int(tomllib.loads(config.read_text())["data"]["image_size"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"--prior {prior}: cannot read [data] image_size from {config} ({exc})") from exc


def check_sample_request(args: argparse.Namespace) -> None:
    """Refuse, before any work, what cannot succeed: a negative or huge ``--image-index``, ``--out`` naming a
    file, and a ``--num-samples`` whose samples alone would not fit in this machine's memory."""
    if not 0 <= args.image_index <= MAX_IMAGE_INDEX:
        raise ValueError(f"--image-index must be in [0, {MAX_IMAGE_INDEX}] (test phantoms are generated in "
                         f"order, so index i costs i + 1 phantoms), got {args.image_index}")
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    check_device_arg(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder (it receives posterior.safetensors, "
                         ".json and .png)")
    from bayesinv.builders import check_memory

    check_memory(args.num_samples, _prior_image_size(args.prior), "--num-samples")


def _run_sample(args: argparse.Namespace) -> int:
    options = parse_options(args.option)
    steps = args.steps
    if args.sampler in CLI_SAMPLE_DEFAULTS and steps is None:
        defaults = dict(CLI_SAMPLE_DEFAULTS[args.sampler])
        steps = defaults.pop("steps")
        options = defaults | options
    check_sample_request(args)  # refuse what cannot succeed before any status line or work
    if not args.no_progress:
        print(f"bayesinv sample: loading the prior {args.prior!r} and simulating the measurement ...",
              file=sys.stderr, flush=True)
    from bayesinv.sampling import sample_cli

    path = sample_cli(problem=args.problem, prior=args.prior, sampler=args.sampler, num_samples=args.num_samples,
                      steps=steps, noise_sigma=args.noise_sigma, image_index=args.image_index, seed=args.seed,
                      out=args.out, progress=not args.no_progress, options=options, device=args.device)
    print(f"posterior: {path}")
    return 0


def _add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="path to calibration/<study>/study.toml (or its folder)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the results (DIR/results) and the report (DIR/report.html + .json); default: the "
                        "study's folder, where a report not made from results there (a committed one) is not "
                        "overwritten without --force")
    p.add_argument("--force", action="store_true",
                   help="overwrite a committed report next to the spec (re-samples every missing task)")
    p.add_argument("--dry-run", action="store_true",
                   help="print how many tasks have no result yet and what they cost (at the seconds per case in the "
                        "report.json next to the spec, when there is one), then stop without sampling")
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="where test cases run")
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--no-recompute", action="store_true",
                   help="refuse (instead of recomputing) when results on disk do not match the spec")
    _add_device(p, "; not part of the results' hashes, so a study resumes on another device")


def _run_calibrate(args: argparse.Namespace, audit: bool | None = None) -> int:
    check_device_arg(args)
    from bayesinv.studies import calibrate

    if not args.no_progress:
        print(f"bayesinv {args.command}: reading {args.study} ...", file=sys.stderr, flush=True)
    if args.dry_run:
        return _dry_run(args)
    report = calibrate(args.study, args.out, audit=audit, backend=args.backend, workers=args.workers,
                       progress=not args.no_progress, recompute=not args.no_recompute, force=args.force,
                       command=args.command_line, device=args.device)
    print(f"report: {report}")
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from bayesinv.studies import load_study
    from bayesinv.studies.pipeline import _duration, estimated_cost, missing_tasks

    spec = load_study(args.study)
    folder = Path(args.out) if args.out is not None else Path(os.path.relpath(spec.folder))
    todo = missing_tasks(spec, folder / "results")
    recorded = Path(os.path.relpath(spec.folder)) / "report.json"
    cost = estimated_cost(todo, recorded)
    counts: dict[str, int] = {}
    for label, _, _ in todo:
        counts[label] = counts.get(label, 0) + 1
    per_sampler = ", ".join(f"{label} {n}" for label, n in counts.items())
    spent = f"; {_duration(cost)} of sampling at the seconds per case recorded in {recorded}" if cost else ""
    print(f"{spec.name}: {len(todo)} tasks without a result in {folder / 'results'}"
          + (f" ({per_sampler})" if todo else "") + spent)
    return 0


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="a study folder (its results/analysis.json, else its committed report.json: "
                                   "re-renders without sampling), a results folder or a report.json")
    p.add_argument("--out", default=None,
                   help="HTML path (default: report.html next to the study's results, or next to the report.json)")


def _run_report(args: argparse.Namespace) -> int:
    from bayesinv.report import render_report

    print(f"report: {render_report(args.results, args.out)}")
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": ("the main job: sample posteriors on the shipped phantom32 prior and write a calibration report",
             _add_demo, _run_demo),
    "sample": ("sample a posterior for a simulated measurement and save it with a summary figure",
               _add_sample, _run_sample),
    "calibrate": ("run a calibration study (resumable) and write its report", _add_calibrate, _run_calibrate),
    "audit": ("run a study with the hallucination audit and write its report", _add_calibrate,
              lambda args: _run_calibrate(args, audit=True)),
    "report": ("render a study's analysis to HTML + JSON", _add_report, _run_report),
    "train": ("train a model: a diffusion prior, a Dirac network or a learned baseline", _add_train, _run_train),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesinv", description="Bayesian inverse problems with diffusion priors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text, epilog=_examples(name),
                                     formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def _written_by(args: argparse.Namespace) -> list[Path]:
    """The files a command writes through ``<name>.tmp`` (removed when it fails half-way)."""
    if args.command == "sample":
        out = Path(args.out)
        return [out / "posterior.safetensors", out / "posterior.safetensors.json"]
    if args.command == "report":
        out = Path(args.out) if args.out is not None else Path(args.results).parent / "report.html"
        return [out, out.with_name(out.stem + ".json")]
    return []


def _remove_partial_files(args: argparse.Namespace) -> None:
    for path in _written_by(args):
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.unlink()
        except OSError:
            pass


def _one_line(args: argparse.Namespace, exc: BaseException) -> str | None:
    """The one-line message of an expected failure, naming the file, key or argument; None for a bug."""
    from bayesinv.errors import BayesinvError

    kind = type(exc).__name__
    text = " ".join(str(exc).split())
    if args.command == "report" and (isinstance(exc, KeyError) or kind == "UndefinedError"):
        key = exc.args[0] if isinstance(exc, KeyError) and exc.args else text
        return (f"{Path(args.results) / 'analysis.json'} lacks {key!r} (written by another bayesinv version or "
                "edited): run `bayesinv calibrate` on the study again")
    if isinstance(exc, json.JSONDecodeError):
        where = Path(args.results) / "analysis.json" if args.command == "report" else "a JSON file"
        return f"{where} is not valid JSON ({text})"
    if kind == "SafetensorError":  # safetensors' own error names no file
        if args.command == "report":
            where = Path(args.results) / "analysis.safetensors"
        elif args.command == "sample":
            where = Path(args.out) / "posterior.safetensors"
        else:
            where = "a result file"
        return f"cannot read or write {where}: {text}"
    if isinstance(exc, OSError):
        if exc.filename is not None and str(exc.filename) not in text:
            return f"{exc.strerror or text}: {exc.filename}"
        written = _written_by(args)
        if exc.filename is None and written and str(written[0].parent) not in text:
            return f"cannot write {written[0].parent}: {text}"
        return text
    if isinstance(exc, BayesinvError | ValueError | TypeError):
        return text
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesinv`` console script.

    An expected failure (bad input, a missing or broken file, a full disk, a study in use) prints one line
    ``bayesinv <command>: error: ...`` naming the file, key or argument and returns 2; ``--debug`` (anywhere
    on the command line) shows the traceback instead. Ctrl-C returns 130 and keeps finished work.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    args.command_line = "bayesinv " + shlex.join(argv)
    from bayesinv._threads import apply_thread_defaults

    apply_thread_defaults()  # torch threads for a shared small machine, unless the user chose (README "Performance")
    try:
        return COMMANDS[args.command][2](args)
    except KeyboardInterrupt:
        _remove_partial_files(args)
        print(f"bayesinv {args.command}: interrupted; finished work is kept on disk and the next run resumes",
              file=sys.stderr)
        return 130
    except Exception as exc:
        _remove_partial_files(args)
        message = _one_line(args, exc)
        if debug or message is None:
            raise
        print(f"bayesinv {args.command}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
