"""The simulated patient's answers and the simulated therapist's confirmations.

The patient gives SUDS ratings that follow the simulated heart's fear response;
the therapist accepts the engine's step-up recommendations after a short look.

Used by ``demo`` and therapist training so the whole SUDS flow (prompt in the
headset, answer, record) runs without a person. Like a real patient it sees the
session from outside: it reads the live session's snapshot for a pending prompt
and answers through the command queue. Ratings are seeded and noisy, and come
after a human-like delay; a prompt that closed meanwhile is not answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from biofeedback.clock import Clock
from therapy.commands import AcceptStepUp, AnswerSuds
from therapy.live import LiveSession

log = logging.getLogger(__name__)


class SimulatedPatient:
    """Answers each SUDS prompt with a rating derived from ``fear_fraction()`` (0..1)."""

    #: how often (session seconds) the patient looks at the panel
    look_every_s = 0.5

    def __init__(self, clock: Clock, live: LiveSession, fear_fraction: Callable[[], float], *, seed: int = 0):
        self._clock = clock
        self._live = live
        self._fear_fraction = fear_fraction
        self._rng = np.random.default_rng([seed, 0x5D5])

    async def run(self) -> None:
        answered: float | None = None
        while True:
            await self._clock.sleep(self.look_every_s)
            prompt = self._live.snapshot().pending_suds
            if prompt is None or prompt.t_s == answered:
                continue
            answered = prompt.t_s
            await self._clock.sleep_until(prompt.t_s + float(self._rng.uniform(3.0, 12.0)))
            still = self._live.snapshot().pending_suds
            if still is None or still.t_s != prompt.t_s:
                continue  # the prompt closed (missed, or the level changed): never answer a question not asked
            fear = min(max(self._fear_fraction(), 0.0), 1.0)
            value = int(np.clip(round(12 + 85 * fear + self._rng.normal(0, 5)), 0, 100))
            self._live.commands.put(AnswerSuds(source="patient (simulated)", value=value))


class SimulatedTherapist:
    """Accepts each step-up recommendation after a seeded 4-15 s look (``demo``, training, tests).

    It watches the live snapshot like a therapist watches the console, and sends the same command the console's
    Accept button sends; an offer that is withdrawn or expires meanwhile is left alone.
    """

    look_every_s = 1.0

    def __init__(self, clock: Clock, live: LiveSession, *, seed: int = 0, name: str = "therapist (simulated)"):
        self._clock = clock
        self._live = live
        self._rng = np.random.default_rng([seed, 0x7E4])
        self._name = name

    async def run(self) -> None:
        seen: float | None = None
        while True:
            await self._clock.sleep(self.look_every_s)
            offer = self._live.snapshot().pending_step_up
            if offer is None or offer.t_s == seen:
                continue
            seen = offer.t_s
            await self._clock.sleep_until(offer.t_s + float(self._rng.uniform(4.0, 15.0)))
            still = self._live.snapshot().pending_step_up
            if still is not None and still.t_s == offer.t_s:
                self._live.commands.put(AcceptStepUp(source=self._name))
