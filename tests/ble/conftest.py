"""Fixtures for the BLE/LSL/replay sensor tests: bounded async runs and record collection."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from tests.conftest import require


def run_async(coro: Coroutine[Any, Any, Any], timeout_s: float = 60.0) -> Any:
    """One event loop per test, and every test bounded: a hang fails instead of blocking CI."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def take_until(
    records: AsyncIterator[Any], stop: Callable[[Any], bool], timeout_s: float = 15.0
) -> list[Any]:
    """Collect records up to and including the first one ``stop`` accepts (bounded)."""
    out: list[Any] = []

    async def go() -> None:
        async for record in records:
            out.append(record)
            if stop(record):
                return
        raise AssertionError(f"stream ended before the expected record; got {out!r}")

    await asyncio.wait_for(go(), timeout_s)
    return out


@pytest.fixture
def need_bumble() -> None:
    require(importlib.util.find_spec("bumble") is not None, "bumble is not installed (pip install 'bumble==0.0.236')")
