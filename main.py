"""vrex command line: parses arguments, configures logging and maps errors to exit codes.

Each package registers its own sub-commands (``register(commands, bench)`` in its
``cli`` module); sessions start through :class:`therapy.runner.SessionRunner`.
This file owns only the parser's top, logging, and the mapping of each
package's error family to exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

log = logging.getLogger("vrex")

USER_ERROR_EXIT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with the error line naming the fix and exit status 2 (argparse's own default)."""

    def error(self, message: str) -> None:
        sub = self.prog.partition(" ")[2]
        hint = f"python main.py {sub} --help" if sub else "python main.py --help"
        self.exit(USER_ERROR_EXIT, f"vrex: error: {message}\n(see '{hint}')\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; sub-commands come from each package's ``cli`` module."""
    from bench import cli as bench_cli
    from biofeedback import cli as biofeedback_cli
    from environments import cli as environments_cli
    from therapy import cli as therapy_cli

    parser = _Parser(
        prog="vrex",
        description="vrex: VR exposure therapy with heart-rate biofeedback.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    bench_parser = commands.add_parser("bench", help="benchmarks: print a table and write JSON")
    bench = bench_parser.add_subparsers(dest="bench", metavar="WHAT", parser_class=_Parser)
    bench.required = True
    therapy_cli.register(commands, bench)
    biofeedback_cli.register(commands, bench)
    bench_cli.register(bench)
    environments_cli.register(commands, bench)
    __import__("protocols.cli").cli.register(commands, bench)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from biofeedback.errors import BiofeedbackError
    from environments.errors import RenderError
    from protocols.errors import ProtocolError
    from therapy.errors import TherapyError

    return (BiofeedbackError, RenderError, ProtocolError, TherapyError)


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except _user_error_types() as exc:
        print(f"vrex: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("vrex: interrupted", file=sys.stderr)
        return 130


def cli() -> None:
    """Console-script entry point (``vrex``)."""
    sys.exit(run())


if __name__ == "__main__":
    cli()
