"""Sub-commands of the biofeedback package, registered on main.py's parser."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands and its benchmarks to bench."""
