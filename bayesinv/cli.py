"""The ``bayesinv`` command line: ``bayesinv <command> --help`` for each command.

Commands are registered in :data:`COMMANDS` (name -> (help, add_arguments, run)); each ``run``
imports what it needs lazily so that ``bayesinv --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "COMMANDS"]


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantom, noise and samplers")
    p.add_argument("--size", choices=["tiny", "small", "full"], default="small",
                   help="study size: tiny (a smoke test), small (the README's demo), full")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_demo(args: argparse.Namespace) -> int:
    from bayesinv.demo import run_demo

    path = run_demo(args.out, seed=args.seed, size=args.size, progress=not args.no_progress)
    print(f"report: {path}")
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True)
    prior = sub.add_parser("prior", help="train a diffusion prior from a config TOML (models/<name>/config.toml)")
    prior.add_argument("--config", required=True, help="path to the config TOML")
    prior.add_argument("--out", default=None, help="output folder (default: from the config)")
    prior.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    prior.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")


def _run_train(args: argparse.Namespace) -> int:
    if args.what == "prior":
        from bayesinv.priors.training import train_prior

        path = train_prior(args.config, out_dir=args.out, device=args.device, resume=not args.no_resume)
        print(f"weights: {path}")
        return 0
    raise SystemExit(f"unknown training target {args.what!r}")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": ("the main job: sample posteriors on the shipped phantom32 prior and write a calibration report",
             _add_demo, _run_demo),
    "train": ("train a model (diffusion prior)", _add_train, _run_train),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesinv", description="Bayesian inverse problems with diffusion priors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesinv`` console script."""
    args = build_parser().parse_args(argv)
    from bayesinv.errors import BayesinvError

    try:
        return COMMANDS[args.command][2](args)
    except (BayesinvError, FileNotFoundError, ValueError) as exc:  # clear message, no traceback
        print(f"bayesinv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayesinv {args.command}: interrupted; finished work is kept on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
