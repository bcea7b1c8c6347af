"""``python main.py bench signal``: artefact handling, HRV accuracy, R-peaks and CPU cost."""

from __future__ import annotations

import argparse


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``bench signal`` to the bench sub-commands."""
