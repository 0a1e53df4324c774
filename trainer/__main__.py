"""`python -m trainer`: build the small base model, or run one fine-tuning job.

    python -m trainer make-base-model PATH
    python -m trainer run --spec URL [--report URL --token T]

Exit codes of `run`: 0 done (finished, cancelled or paused as asked), 2 bad spec or bad data,
anything else a crash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-base-model", help="write the small deterministic base model")
    make.add_argument("path", type=Path)
    run = commands.add_parser("run", help="run one fine-tuning job from its JobSpec")
    run.add_argument("--spec", required=True, help="JobSpec URL (file:///... or s3://...)")
    run.add_argument("--report", help="progress endpoint; without it, progress goes to stdout")
    run.add_argument("--token", help="bearer token for --report")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "make-base-model":
        from trainer.basemodel import make_base_model

        print(make_base_model(args.path))
        return 0
    if args.report and not args.token:
        print("error: --report needs --token", file=sys.stderr)
        return 2
    from trainer.entry import run_command

    return run_command(args.spec, report_url=args.report, token=args.token)


if __name__ == "__main__":
    sys.exit(main())
