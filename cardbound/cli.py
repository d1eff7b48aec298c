"""The `cardbound` command. Each package contributes its own sub-commands through `register(subparsers)`.

Errors that a user can act on are raised by the sub-commands as their package's typed errors (`CliError` here)
and printed as one clear line; `cardbound.exits` is the only place that turns errors and outcomes into exit
codes. A traceback is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cardbound import __version__
from cardbound.errors import ExitCode
from cardbound.exits import error_exit_code, exit_code
from cardbound.home import ENV_VAR, Home

# Modules that expose `register(subparsers: argparse._SubParsersAction) -> None`. A module that is not
# there yet (work in progress) is skipped, so the command keeps working while the project grows.
COMMAND_MODULES: tuple[str, ...] = (
    "cardbound.demo",
    "biometric.cli",
    "card.cli",
    "card.keys_cli",
    "cardbound.enrolment",
    "cardbound.desk",
    "verify.cli",
    "audit.cli",
    "cardbound.evidence",
)

Handler = Callable[[argparse.Namespace], object]  # None, an int, or an outcome enum (see cardbound.exits)

# Commands whose process holds a reference template, card data, a national register number or private keys next to
# the worker for a moment: no core file (RLIMIT_CORE = 0) and not dumpable (no ptrace attach, no /proc/PID/mem by
# other users), set before the command runs. Command -> its sub-commands concerned (None: all of them).
KEEP_NOTHING: Mapping[str, frozenset[str] | None] = {
    "verify": None,
    "gate": None,
    "desk": frozenset({"serve"}),
    "enrol": None,
    "biometric": frozenset({"compare"}),
    "demo": None,
    "keys": None,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardbound",
        description=(
            "Biometric template-on-card access control for Belgian ports (Navigation Code art. 2.5.2.85 §3): "
            "the face template lives only on the holder's card; gates compare 1:1 and keep nothing."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cardbound {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help=f"station home directory (keys, audit log, card images); default ${ENV_VAR} or a per-user directory",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Any = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitCode.USAGE if args.command else ExitCode.OK
    args.home_dir = Home.resolve(args.home)
    if keeps_nothing(args):  # first: before any key, card data or template is in this process
        from biometric.isolation import no_core_dumps

        no_core_dumps()
    args.home_dir.use_token()
    from cardbound import auditkey

    auditkey.install()  # a home on tokens signs its audit checkpoints in its token, never with a key file
    return dispatch(handler, args)


def keeps_nothing(args: argparse.Namespace) -> bool:
    """Whether the parsed command is one of `KEEP_NOTHING` (its process must never dump core)."""
    if args.command not in KEEP_NOTHING:
        return False
    subs = KEEP_NOTHING[args.command]
    if subs is None:
        return True
    chosen = {str(v) for k, v in vars(args).items() if k.endswith("_command") and v is not None}
    return bool(chosen & subs)


def dispatch(handler: Handler, args: argparse.Namespace) -> int:
    """Run one sub-command's handler and turn its outcome, or the typed error it raised, into the exit code."""
    try:
        outcome = handler(args)
    except KeyboardInterrupt:
        print("cardbound: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        code = error_exit_code(exc)
        if code is None:
            raise  # not an error the user can act on: a bug, and the traceback says where
        print(f"cardbound: error: {exc}", file=sys.stderr)
        return code
    return exit_code(outcome)


if __name__ == "__main__":
    sys.exit(main())
