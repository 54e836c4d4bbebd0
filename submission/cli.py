"""The ``hakuna`` command: one console script, a subcommand per job.  Each subcommand only builds a config
and calls a library function; the subcommands live in ``submission/commands/``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from camtrap.fileio import DataError
from camtrap.metric import SubmissionError
from submission.commands import UsageError, analysis, classify, data, demo, detect, run

__all__ = ["main", "build_parser"]

COMMAND_MODULES = (data, demo, detect, classify, run, analysis)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every subcommand registered by its module's ``register``)."""
    parser = argparse.ArgumentParser(prog="hakuna", description="Wildlife identification for camera-trap sequences.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hakuna`` with ``argv``; returns the exit status (0 ok, 1 failed, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except (DataError, SubmissionError, UsageError, FileNotFoundError) as exc:
        print(f"hakuna {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hakuna {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
