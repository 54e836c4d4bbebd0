"""The ``hakuna`` command: one console script, a subcommand per job.  Each subcommand only builds a config
and calls a library function; the subcommands live in ``hakuna/commands/``.

Errors a user can fix (a malformed file, a refused model, an unreadable path, an unwritable output) are printed
as one line naming the file, with exit status 2; anything else is a bug and keeps its traceback.  Heavy
libraries (torch, ultralytics) are imported by the handlers that need them, so light commands start fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hakuna.commands import UsageError, analysis, classify, data, demo, detect, run, train

__all__ = ["main", "build_parser"]

COMMAND_MODULES = (data, demo, train, detect, classify, run, analysis)
# Exception classes (by module, imported only if that module was) whose message is a complete one-line answer.
_USER_ERRORS = (("camtrap.fileio", "DataError"), ("camtrap.metric", "SubmissionError"),
                ("camtrap.safeload", "ModelFileError"), ("fusion.model", "FusionMismatchError"),
                ("camtrap.download", "DownloadError"), ("classifier.backbones", "PretrainedUnavailable"),
                ("submission.harness", "HarnessError"), ("classifier.data", "SampleError"),
                ("hakuna.train", "TrainError"), ("camtrap.dataset", "SplitError"))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every subcommand registered by its module's ``register``)."""
    parser = argparse.ArgumentParser(prog="hakuna", description="Wildlife identification for camera-trap sequences.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _user_error(exc: BaseException) -> str | None:
    """The one line to print for an error the user can fix, or None for a bug."""
    if isinstance(exc, UsageError):
        return str(exc)
    for module, name in _USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return str(exc)
    if isinstance(exc, OSError):  # FileNotFoundError, PermissionError, IsADirectoryError, disk full, ...
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hakuna`` with ``argv``; returns the exit status (0 ok, 1 failed, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"hakuna {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            raise
        print(f"hakuna {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
