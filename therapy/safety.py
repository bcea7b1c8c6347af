"""The safety supervisor: an independent check on every tick, with a veto over the controller.

It does not trust the controller: it re-checks the heart data itself before any
step up, watches an HR ceiling derived from age (Tanaka: 208 - 0.7 x age) and
sends the patient to the safe place when the ceiling is exceeded for a few
seconds. Its limits are ceilings for safety, not exposure targets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from biofeedback.records import HeartState
from protocols.model import SafetySpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """What the supervisor says this tick: may exposure step up, must it go to the safe place, alerts."""

    allow_step_up: bool
    go_to_safe_place: bool
    alert_code: str | None = None
    message: str = ""


#: Age assumed when the patient's birth year is not known: older than most patients, so the ceiling errs low.
UNKNOWN_AGE_YEARS = 60.0


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
        self._stale_since_s: float | None = None
        self._stale_alerted = False

    def check(self, t_s: float, heart: HeartState, *, exposed: bool) -> SafetyVerdict:
        """One tick: ``exposed`` is true while a phobic stimulus is on screen."""
        spec = self._spec
        if heart.stale or heart.hr_bpm is None:
            self._above_since_s = None
            self._stale_since_s = self._stale_since_s if self._stale_since_s is not None else t_s
            stale_s = t_s - self._stale_since_s
            if exposed and stale_s >= spec.stale_alert_s and not self._stale_alerted:
                self._stale_alerted = True
                return SafetyVerdict(
                    False,
                    False,
                    "heart_data_stale",
                    f"no fresh heart data for {stale_s:.0f} s: exposure held, check the sensor",
                )
            return SafetyVerdict(False, False)
        self._stale_since_s = None
        self._stale_alerted = False
        if heart.hr_bpm >= self.ceiling_bpm:
            self._above_since_s = self._above_since_s if self._above_since_s is not None else t_s
            above_s = t_s - self._above_since_s
            if exposed and above_s >= spec.ceiling_sustain_s:
                return SafetyVerdict(
                    False,
                    True,
                    "hr_ceiling",
                    f"HR {heart.hr_bpm:.0f} bpm above the safety ceiling {self.ceiling_bpm:.0f} bpm "
                    f"({spec.hr_ceiling_fraction:.0%} of the age-predicted maximum {self.hr_max_bpm:.0f}) "
                    f"for {above_s:.0f} s: safe place",
                )
            return SafetyVerdict(False, False)
        self._above_since_s = None
        return SafetyVerdict(True, False)
