"""`python -m trainer`: build the small base model, or run one fine-tuning job.

    python -m trainer make-base-model PATH
    python -m trainer run --spec URL [--report URL]

With `--report`, the bearer token comes from `WHETSTONE_ATTEMPT_TOKEN` (how executors pass
it); `--token T` is accepted for manual runs and wins over the variable, but puts the token
where every local user can read it (`/proc/PID/cmdline`).

Exit codes of `run`: 0 done (finished, cancelled or paused as asked), 2 bad spec or bad data,
anything else a crash.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contracts.messages import ATTEMPT_TOKEN_ENV


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-base-model", help="write the small deterministic base model")
    make.add_argument("path", type=Path)
    run = commands.add_parser("run", help="run one fine-tuning job from its JobSpec")
    run.add_argument("--spec", required=True, help="JobSpec URL (file:///... or s3://...)")
    run.add_argument("--report", help="progress endpoint; without it, progress goes to stdout")
    run.add_argument(
        "--token", help=f"bearer token for --report (manual runs; default: ${ATTEMPT_TOKEN_ENV})"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "make-base-model":
        from trainer.basemodel import make_base_model

        print(make_base_model(args.path))
        return 0
    token = args.token or os.environ.get(ATTEMPT_TOKEN_ENV) or None
    if args.report and not token:
        print(f"error: --report needs ${ATTEMPT_TOKEN_ENV} (or --token)", file=sys.stderr)
        return 2
    from trainer.entry import run_command

    return run_command(args.spec, report_url=args.report, token=token)


if __name__ == "__main__":
    sys.exit(main())
