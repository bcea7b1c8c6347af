"""A seeded simulated chest strap: the sensor behind ``demo``, therapist training and tests.

The model is a small physiological one, not a sine wave: a resting heart rate
with respiratory sinus arrhythmia (RSA) and slow Mayer waves, a fear response
that follows the exposure ``drive`` (0..1, usually the scene's intensity) with
a first-order lag and habituates over minutes of holding one intensity, and
beat-to-beat jitter. Beats are grouped into ~1 Hz notifications carrying 0-4 RR
intervals, like a real strap, with occasional ectopic and missed beats.
Scripted :class:`Fault` windows reproduce link dropouts, stalls, implausible
values and malformed payloads so the rest of the system can be exercised
against them.

Resonance physiology: when a breathing ``pacer`` shows a rate (breaths/min),
the simulated patient's breathing follows it within seconds, and the
breathing-related HR oscillation grows towards a seeded *resonance rate*
(4.5-6.5 breaths/min, where breathing and the ~0.1 Hz baroreflex reinforce each
other; Lehrer): the amplification is a Gaussian around that rate, so a
resonance-frequency assessment has a known right answer. While breathing is
locked to a slow pacer, the free-running Mayer wave is absorbed into the
breathing rhythm (its own amplitude shrinks), as in real resonance breathing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from biofeedback.clock import Clock
from biofeedback.hrm import RR_UNIT_MS
from biofeedback.records import HeartSample, LinkEvent, LinkState, PayloadError, SensorRecord

log = logging.getLogger(__name__)

FAULT_KINDS = ("dropout", "stall", "implausible", "bad_payload", "no_contact")


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted fault from ``start_s`` (seconds after the sensor starts) for ``duration_s``.

    * ``dropout``: the link is lost (LinkEvent LOST ... RECONNECTED), beats in the window are lost.
    * ``stall``: notifications stop without any link event (a frozen strap or stack).
    * ``implausible``: RR values of 150 ms and HR bytes of 250 bpm.
    * ``bad_payload``: every notification is a malformed payload.
    * ``no_contact``: the strap reports no skin contact and sends no RR values.
    """

    kind: str
    start_s: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: expected one of {', '.join(FAULT_KINDS)}")
        if self.duration_s <= 0 or self.start_s < 0:
            raise ValueError(f"fault {self.kind} needs start_s >= 0 and duration_s > 0, got {self.start_s}, {self.duration_s}")

    def active(self, t_rel_s: float) -> bool:
        return self.start_s <= t_rel_s < self.start_s + self.duration_s

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND@START+DURATION`` in seconds, e.g. ``dropout@300+20``."""
        try:
            kind, rest = text.split("@", 1)
            start, duration = rest.split("+", 1)
            return cls(kind.strip(), float(start), float(duration))
        except ValueError as exc:
            raise ValueError(
                f"bad fault {text!r}: expected KIND@START+DURATION in seconds, e.g. dropout@300+20 "
                f"(kinds: {', '.join(FAULT_KINDS)}); {exc}"
            ) from None


@dataclass(frozen=True, slots=True)
class PatientModel:
    """Physiological parameters of the simulated patient (defaults: a healthy adult, moderate fear)."""

    rest_hr_bpm: float = 70.0
    breaths_per_min: float = 12.0  # spontaneous breathing rate
    rsa_amp_bpm: float = 4.0  # peak-to-mean RSA swing at rest (away from resonance)
    resonance_breaths_per_min: float = 5.5  # breathing rate with the largest HR oscillation
    resonance_gain: float = 2.5  # RSA amplification at the resonance rate
    resonance_width_breaths_per_min: float = 0.6  # SD of the Gaussian amplification around it
    pacer_follow_tau_s: float = 6.0  # how fast breathing follows a change of the pacer rate
    pacer_lock_tau_s: float = 25.0  # how fast breathing becomes regular (locked) under a pacer
    mayer_amp_bpm: float = 1.5  # ~0.1 Hz baroreflex oscillation
    fear_gain_bpm: float = 38.0  # HR rise at full intensity before habituation
    fear_floor: float = 0.25  # share of the response that never habituates within a session
    habituation_tau_s: float = 150.0  # exposure time at one intensity for the response to fall by 1/e
    rise_tau_s: float = 15.0  # lag of the fear response rising
    fall_tau_s: float = 35.0  # lag of recovery
    jitter_ms: float = 12.0  # beat-to-beat noise
    ectopic_prob: float = 0.004
    missed_prob: float = 0.002
    notify_period_s: float = 1.0


class SimulatedSensor:
    """A :class:`biofeedback.sensor.HeartSensor` producing a realistic, seeded RR stream.

    ``drive`` returns the current exposure intensity 0..1 (the simulated
    patient "sees" the scene); ``None`` means rest. ``pacer`` returns the
    breathing pacer's rate in breaths/min, or None when no pacer is shown (then
    the patient breathes spontaneously). Time comes from ``clock``,
    so the same seed gives the same beats at any ``--speed`` and in tests.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int = 0,
        drive: Callable[[], float] | None = None,
        pacer: Callable[[], float | None] | None = None,
        faults: Sequence[Fault] = (),
        model: PatientModel | None = None,
        duration_s: float | None = None,
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._drive = drive or (lambda: 0.0)
        self._pacer = pacer or (lambda: None)
        self._faults = tuple(faults)
        self._model = model or _individual_model(seed)
        self._duration_s = duration_s
        self._rng = np.random.default_rng(seed)
        self._closed = False
        self._fear_bpm = 0.0
        self._habituation_s: dict[int, float] = {}
        self._last_update_s: float | None = None
        self._phase_breath = float(self._rng.uniform(0, 2 * math.pi))
        self._phase_mayer = float(self._rng.uniform(0, 2 * math.pi))
        self._slow_noise_bpm = 0.0
        self._breath_arg: float | None = None  # integrated breathing phase (radians)
        self._breath_rate: float = self._model.breaths_per_min  # actual breathing rate now, breaths/min
        self._breath_t_s: float | None = None
        self._lock = 0.0  # 0 = spontaneous, 1 = breathing locked to the pacer

    @property
    def breaths_per_min(self) -> float:
        """The simulated patient's actual breathing rate now (follows a pacer with a lag)."""
        return self._breath_rate

    @property
    def pacer_lock(self) -> float:
        """0..1: how regular the breathing has become under the pacer (0 without a pacer)."""
        return self._lock

    def rsa_gain(self, breaths_per_min: float) -> float:
        """RSA amplification at a breathing rate: peaks at the model's resonance rate (ground truth for tests)."""
        m = self._model
        x = (breaths_per_min - m.resonance_breaths_per_min) / m.resonance_width_breaths_per_min
        return 1.0 + (m.resonance_gain - 1.0) * math.exp(-0.5 * x * x)

    @property
    def description(self) -> str:
        return f"simulated strap (seed {self._seed})"

    @property
    def fear_bpm(self) -> float:
        """The current fear component of HR; the simulated patient's SUDS answers derive from it."""
        return self._fear_bpm

    @property
    def model(self) -> PatientModel:
        return self._model

    async def close(self) -> None:
        self._closed = True

    async def records(self) -> AsyncIterator[SensorRecord]:
        m = self._model
        start_s = self._clock.now()
        t_beat = start_s
        pending_rr: list[float] = []
        next_notify = start_s + m.notify_period_s
        link_lost = False
        yield LinkEvent(start_s, LinkState.CONNECTED, self.description, source="sim")
        while not self._closed:
            if self._duration_s is not None and t_beat - start_s >= self._duration_s:
                break
            rr_ms = self._next_rr_ms(t_beat - start_s)  # the physiology runs on the strap's own time: a session
            # gives the same heart whatever the clock's origin (virtual in tests, paced or LSL time in demos)
            # Beats up to the next notification accumulate; the strap sends what it has each period.
            t_beat += rr_ms / 1000.0
            rel = t_beat - start_s
            rr_values = self._artefacts(rr_ms)
            if not any(f.kind == "dropout" and f.active(rel) for f in self._faults):
                pending_rr.extend(rr_values)
            while next_notify <= t_beat and not self._closed:
                await self._clock.sleep_until(next_notify)
                rel_n = next_notify - start_s
                active = {f.kind for f in self._faults if f.active(rel_n)}
                if "dropout" in active:
                    if not link_lost:
                        link_lost = True
                        yield LinkEvent(next_notify, LinkState.LOST, "simulated dropout", source="sim")
                    pending_rr.clear()
                elif link_lost:
                    link_lost = False
                    yield LinkEvent(next_notify, LinkState.RECONNECTED, "simulated link back", source="sim")
                if not link_lost and "stall" not in active:
                    record = self._notification(next_notify, pending_rr[-4:], active)
                    yield record
                pending_rr.clear()
                next_notify += m.notify_period_s
        yield LinkEvent(self._clock.now(), LinkState.CLOSED, "simulation ended", source="sim")

    # -- model -------------------------------------------------------------------------------

    def _next_rr_ms(self, t_s: float) -> float:
        m = self._model
        self._update_fear(t_s)
        breath = math.sin(self._update_breathing(t_s))
        mayer = math.sin(2 * math.pi * 0.1 * t_s + self._phase_mayer)
        # Sympathetic arousal damps vagal RSA: the swing shrinks as fear rises.
        rsa_scale = 1.0 / (1.0 + self._fear_bpm / 15.0) * self.rsa_gain(self._breath_rate)
        self._slow_noise_bpm = 0.98 * self._slow_noise_bpm + float(self._rng.normal(0, 0.25))
        mayer_amp = m.mayer_amp_bpm * (1.0 - 0.7 * self._lock)
        hr = m.rest_hr_bpm + self._fear_bpm + m.rsa_amp_bpm * rsa_scale * breath + mayer_amp * mayer
        hr += self._slow_noise_bpm
        hr = min(max(hr, 35.0), 200.0)
        return 60000.0 / hr + float(self._rng.normal(0, m.jitter_ms))

    def _update_breathing(self, t_s: float) -> float:
        """Advance the breathing phase to ``t_s``; the rate follows the pacer (or drifts back to spontaneous)."""
        m = self._model
        if self._breath_arg is None or self._breath_t_s is None:
            # Same phase as a fixed-rate sinusoid started at t = 0, so runs without a pacer keep their beats.
            self._breath_arg = 2 * math.pi * self._breath_rate / 60.0 * t_s + self._phase_breath
            self._breath_t_s = t_s
            return self._breath_arg
        dt = max(0.0, t_s - self._breath_t_s)
        self._breath_t_s = t_s
        pacer = self._pacer()
        target = m.breaths_per_min if pacer is None else min(max(float(pacer), 2.0), 30.0)
        if dt > 0:
            self._breath_rate += (target - self._breath_rate) * (1 - math.exp(-dt / m.pacer_follow_tau_s))
            lock_target = 0.0 if pacer is None else 1.0
            self._lock += (lock_target - self._lock) * (1 - math.exp(-dt / m.pacer_lock_tau_s))
        self._breath_arg += 2 * math.pi * self._breath_rate / 60.0 * dt
        return self._breath_arg

    def _update_fear(self, t_s: float) -> None:
        m = self._model
        dt = 0.0 if self._last_update_s is None else max(0.0, t_s - self._last_update_s)
        self._last_update_s = t_s
        drive = min(max(float(self._drive()), 0.0), 1.0)
        key = round(drive * 100)
        if drive > 0:
            self._habituation_s[key] = self._habituation_s.get(key, 0.0) + dt
        # Habituation generalises downwards: time spent at a higher intensity also calms lower ones.
        hab_s = max((v for k, v in self._habituation_s.items() if k >= key), default=0.0)
        novelty = m.fear_floor + (1 - m.fear_floor) * math.exp(-hab_s / m.habituation_tau_s)
        target = m.fear_gain_bpm * drive * novelty
        tau = m.rise_tau_s if target > self._fear_bpm else m.fall_tau_s
        if dt > 0:
            self._fear_bpm += (target - self._fear_bpm) * (1 - math.exp(-dt / tau))

    def _artefacts(self, rr_ms: float) -> list[float]:
        m = self._model
        u = self._rng.random()
        if u < m.ectopic_prob:  # premature beat and compensatory pause, same total time
            return [rr_ms * 0.65, rr_ms * 1.35]
        if u < m.ectopic_prob + m.missed_prob:  # a missed R-peak merges two intervals
            return [rr_ms * 2.0]
        return [rr_ms]

    def _notification(self, t_s: float, rr_ms: list[float], active: set[str]) -> SensorRecord:
        if "bad_payload" in active:
            return PayloadError(t_s, "11", "simulated malformed payload (flags say uint16 HR, 0 bytes follow)", "sim")
        if "no_contact" in active:
            return HeartSample(t_s, (), hr_bpm=None, sensor_contact=False, source="sim")
        if "implausible" in active:
            return HeartSample(t_s, (150.0,), hr_bpm=250.0, sensor_contact=True, source="sim")
        rr = tuple(round(v / RR_UNIT_MS) * RR_UNIT_MS for v in rr_ms)  # the strap's resolution, 1/1024 s
        hr_byte = round(60000.0 / (sum(rr) / len(rr))) if rr else None
        return HeartSample(t_s, rr, hr_bpm=hr_byte, sensor_contact=True, source="sim")


def _individual_model(seed: int) -> PatientModel:
    """Patients differ: the seed also varies resting HR, breathing and fear sensitivity a little."""
    rng = np.random.default_rng([seed, 0x5EED])
    return PatientModel(
        rest_hr_bpm=float(rng.uniform(62, 78)),
        breaths_per_min=float(rng.uniform(10, 15)),
        rsa_amp_bpm=float(rng.uniform(3.0, 5.5)),
        fear_gain_bpm=float(rng.uniform(48, 60)),
        habituation_tau_s=float(rng.uniform(90, 140)),
        # Drawn from a separate stream so the other parameters stay what they were for each seed.
        resonance_breaths_per_min=float(np.random.default_rng([seed, 0x7E50]).uniform(4.5, 6.5)),
    )
