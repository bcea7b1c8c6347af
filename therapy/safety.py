"""The safety supervisor: an independent check on every tick, with a veto over the controller.

It does not trust the controller: it re-checks the heart data itself before any
step up, watches an HR ceiling derived from the patient's age (Tanaka: 208 -
0.7 x age) in every phase, sends the patient to the safe place when the ceiling
is exceeded for a few seconds of exposure (elsewhere it alerts), repeats the
stale-data alert while it lasts, and escalates repeated breaches (the session's
maximum level comes down and the alert gets louder). Its limits are ceilings for
safety, not exposure targets.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from biofeedback.records import HeartState
from protocols.model import SafetySpec

log = logging.getLogger(__name__)

#: Age assumed when the patient's birth year is not known: older than most patients, so the ceiling errs low.
UNKNOWN_AGE_YEARS = 60.0


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """What the supervisor says this tick: may exposure step up, must it go to the safe place, alerts.

    ``escalate`` is set on the breach that makes ``breaches_to_escalate`` within ``escalation_window_s``: the
    runtime lowers the session's maximum level by ``escalation_lowers_max_by``.
    """

    allow_step_up: bool
    go_to_safe_place: bool
    alert_code: str | None = None
    message: str = ""
    escalate: bool = False
    severity: str = "warning"


def tanaka_hr_max_bpm(age_years: float) -> float:
    """Age-predicted maximum heart rate (Tanaka et al. 2001)."""
    return 208.0 - 0.7 * age_years


class SafetySupervisor:
    """Evaluates each heart state against the protocol's safety limits and the patient's age.

    The protocol sets the fraction of the age-predicted maximum; the age is the patient's (from their record),
    :data:`UNKNOWN_AGE_YEARS` when it is not known.
    """

    def __init__(self, spec: SafetySpec, *, age_years: float | None = None) -> None:
        self._spec = spec
        self.age_known = age_years is not None
        self.age_years = float(age_years) if age_years is not None else UNKNOWN_AGE_YEARS
        self.hr_max_bpm = tanaka_hr_max_bpm(self.age_years)
        self.ceiling_bpm = spec.hr_ceiling_fraction * self.hr_max_bpm
        self._above_since_s: float | None = None
        self._ceiling_alerted = False  # one alert per episode above the ceiling outside exposure
        self._stale_since_s: float | None = None
        self._stale_alerted_s: float | None = None
        self._breaches: deque[float] = deque()
        self.breaches = 0

    def _ceiling_text(self, hr_bpm: float, above_s: float) -> str:
        age = f"{self.age_years:.0f} y" if self.age_known else f"age unknown, {self.age_years:.0f} y assumed"
        return (f"HR {hr_bpm:.0f} bpm (now) above the safety ceiling {self.ceiling_bpm:.0f} bpm "
                f"({self._spec.hr_ceiling_fraction:.0%} of the age-predicted maximum {self.hr_max_bpm:.0f}, {age}) "
                f"for {above_s:.0f} s")

    def check(self, t_s: float, heart: HeartState, *, exposed: bool) -> SafetyVerdict:
        """One tick: ``exposed`` is true while a phobic stimulus is on screen."""
        spec = self._spec
        if heart.stale or heart.hr_bpm is None:
            self._above_since_s = None
            if self._stale_since_s is None:
                self._stale_since_s = t_s
            stale_s = t_s - self._stale_since_s
            due = (self._stale_alerted_s is None and stale_s >= spec.stale_alert_s) or (
                self._stale_alerted_s is not None and t_s - self._stale_alerted_s >= spec.stale_alert_repeat_s)
            if exposed and due:
                repeat = self._stale_alerted_s is not None
                self._stale_alerted_s = t_s
                return SafetyVerdict(
                    False, False, "heart_data_stale",
                    f"no fresh heart data for {stale_s:.0f} s: exposure held, check the sensor"
                    + (" (still)" if repeat else ""),
                    severity="critical" if repeat else "warning",
                )
            return SafetyVerdict(False, False)
        if self._stale_alerted_s is not None:
            self._stale_alerted_s = None
        self._stale_since_s = None
        if heart.hr_bpm >= self.ceiling_bpm:
            if self._above_since_s is None:
                self._above_since_s = t_s
            above_s = t_s - self._above_since_s
            if above_s < spec.ceiling_sustain_s:
                return SafetyVerdict(False, False)
            if exposed:
                self._above_since_s = None
                self._breaches.append(t_s)
                self.breaches += 1
                while self._breaches and self._breaches[0] < t_s - spec.escalation_window_s:
                    self._breaches.popleft()
                escalate = len(self._breaches) >= spec.breaches_to_escalate
                if escalate:
                    self._breaches.clear()
                return SafetyVerdict(
                    False, True, "hr_ceiling", self._ceiling_text(heart.hr_bpm, above_s) + ": safe place",
                    escalate=escalate, severity="critical",
                )
            if not self._ceiling_alerted:
                self._ceiling_alerted = True
                return SafetyVerdict(False, False, "hr_ceiling",
                                     self._ceiling_text(heart.hr_bpm, above_s) + " (no exposure shown): alert only")
            return SafetyVerdict(False, False)
        self._above_since_s = None
        self._ceiling_alerted = False
        return SafetyVerdict(True, False)
