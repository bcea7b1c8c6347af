"""Sub-commands of the protocols package: ``protocols list``, ``protocols show NAME``, ``protocols check FILE``.

``show`` prints a built-in protocol's file exactly as shipped (every parameter
documented in a comment), so a clinic can redirect it to a file, edit it and
``check`` it before the first session.
"""

from __future__ import annotations

import argparse
import sys


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands (it has no benchmarks)."""
    p = commands.add_parser("protocols", help="list, show and check session protocols")
    sub = p.add_subparsers(dest="protocols_command", metavar="ACTION")
    sub.required = True

    p_list = sub.add_parser("list", help="the built-in protocols with their kind and environment")
    p_list.set_defaults(handler=_list)

    p_show = sub.add_parser("show", help="print a protocol's TOML, every parameter commented (a template to copy)")
    p_show.add_argument("protocol", metavar="NAME", help="built-in protocol name (see 'protocols list') or a .toml path")
    p_show.set_defaults(handler=_show)

    p_check = sub.add_parser("check", help="validate a protocol file: exit 0 if valid, 2 with one line if not")
    p_check.add_argument("file", metavar="FILE", help="protocol .toml file (or a built-in name)")
    p_check.set_defaults(handler=_check)


def _list(args: argparse.Namespace) -> int:
    from protocols.model import builtin_names, load_protocol

    rows = []
    for name in builtin_names():
        spec, _ = load_protocol(name)
        rows.append((name, spec.kind, spec.environment, spec.title))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0


def _show(args: argparse.Namespace) -> int:
    from protocols.model import load_protocol

    _, text = load_protocol(args.protocol)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _check(args: argparse.Namespace) -> int:
    from protocols.model import load_protocol

    spec, _ = load_protocol(args.file)  # a ProtocolError becomes "vrex: error: ..." and exit 2 in main.py
    print(f"{args.file}: valid {spec.kind} protocol {spec.name!r} ({spec.title}) on environment {spec.environment!r}")
    return 0
