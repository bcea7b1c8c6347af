"""Registers every benchmark as a ``bench`` sub-command on main.py's parser.

One place lists the benchmarks, so the library packages' own ``cli`` modules
register only product commands.
"""

from __future__ import annotations

import argparse


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``bench signal``, ``bench render`` and ``bench link`` to the bench sub-commands."""
    from bench import link, render, signal

    signal.register(bench)
    render.register(bench)
    link.register(bench)
    __import__("bench.lsl").lsl.register(bench)
    __import__("bench.live").live.register(bench)
    __import__("bench.console").console.register(bench)
