"""The simulated patient's answers: SUDS ratings that follow the simulated heart's fear response.

Used by ``demo`` and therapist training so the whole SUDS flow (prompt in the
headset, answer, record) runs without a person. Ratings are seeded and noisy,
and come after a human-like delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from biofeedback.clock import Clock
from therapy.commands import AnswerSuds, CommandQueue
from therapy.events import Event, SudsPrompted

log = logging.getLogger(__name__)


class SimulatedPatient:
    """Answers each SUDS prompt with a rating derived from ``fear_fraction()`` (0..1)."""

    def __init__(self, clock: Clock, commands: CommandQueue, fear_fraction: Callable[[], float], *, seed: int = 0):
        self._clock = clock
        self._commands = commands
        self._fear_fraction = fear_fraction
        self._rng = np.random.default_rng([seed, 0x5D5])
        self._prompts: asyncio.Queue[SudsPrompted] | None = None

    def on_event(self, event: Event) -> None:
        """Bus subscriber (runs on the runtime loop)."""
        if isinstance(event, SudsPrompted) and self._prompts is not None:
            self._prompts.put_nowait(event)

    async def run(self) -> None:
        self._prompts = asyncio.Queue()
        while True:
            prompt = await self._prompts.get()
            await self._clock.sleep_until(prompt.t_s + float(self._rng.uniform(3.0, 12.0)))
            fear = min(max(self._fear_fraction(), 0.0), 1.0)
            value = int(np.clip(round(12 + 85 * fear + self._rng.normal(0, 5)), 0, 100))
            self._commands.put(AnswerSuds(source="patient (simulated)", value=value))
