"""The protocol file format (TOML), validated with pydantic so every error names its key and value.

A protocol says which environment to use, how long the baseline and recovery
last, how the controller climbs the hierarchy, when to ask for SUDS and what the
safety supervisor's limits are. Built-in protocols ship in ``protocols/builtin``;
clinics write their own files in the same format.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocols.errors import ProtocolError


class _Section(BaseModel):
    # inf/nan would silently switch limits off (a ceiling that never fires): refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


HOUR_S = 3600.0


class BaselineSpec(_Section):
    duration_s: float = Field(180.0, ge=30.0, le=HOUR_S, description=">= 3 min is the clinical standard; 30 s allowed for tests")


class ExposureSpec(_Section):
    start_level: int = Field(0, ge=0, le=100)
    max_level: int | None = Field(None, ge=0, le=100)
    min_hold_s: float = Field(60.0, gt=0, le=HOUR_S)
    ramp_s: float = Field(6.0, ge=0, le=600.0)


class ControllerSpec(_Section):
    kind: Literal["arousal_habituation", "manual"] = "arousal_habituation"
    arousal_window_s: float = Field(10.0, ge=0, le=600.0, description="decisions use arousal averaged over this window")
    step_up_below_z: float = Field(1.5, ge=-10.0, le=20.0)
    step_up_sustain_s: float = Field(20.0, ge=0, le=600.0)
    step_down_above_z: float = Field(3.0, ge=-10.0, le=20.0)
    step_down_sustain_s: float = Field(10.0, ge=0, le=600.0)
    step_down_settle_s: float = Field(
        30.0, ge=0, le=600.0, description="after a level change, give the heart this long to respond before stepping down"
    )
    min_quality: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ControllerSpec:
        if self.step_up_below_z >= self.step_down_above_z:
            raise ValueError(
                f"step_up_below_z ({self.step_up_below_z}) must be below step_down_above_z ({self.step_down_above_z})"
            )
        return self


class SudsSpec(_Section):
    every_s: float = Field(120.0, gt=0, le=HOUR_S)
    answer_timeout_s: float = Field(30.0, gt=0, le=600.0)


class RecoverySpec(_Section):
    duration_s: float = Field(120.0, ge=0, le=HOUR_S)
    breathing_rate_bpm: float = Field(6.0, ge=3.0, le=12.0)


class SafetySpec(_Section):
    age_years: int = Field(35, ge=5, le=110)
    hr_ceiling_fraction: float = Field(0.85, gt=0.3, le=1.0)
    ceiling_sustain_s: float = Field(5.0, ge=0, le=60.0)
    stale_alert_s: float = Field(15.0, gt=0, le=300.0)


class ProtocolSpec(_Section):
    """One session protocol, as written in a TOML file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    environment: str
    safe_environment: str = "safe_place"
    baseline: BaselineSpec = BaselineSpec()
    exposure: ExposureSpec = ExposureSpec()
    controller: ControllerSpec = ControllerSpec()
    suds: SudsSpec = SudsSpec()
    recovery: RecoverySpec = RecoverySpec()
    safety: SafetySpec = SafetySpec()

    @property
    def fixed_duration_s(self) -> float:
        """Baseline plus recovery: what a session spends outside exposure."""
        return self.baseline.duration_s + self.recovery.duration_s


def _format_validation_error(source: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        problems.append(f"{key}{shown}: {err['msg']}")
    return f"protocol {source}: " + "; ".join(problems)


def parse_protocol(text: str, source: str = "<text>") -> ProtocolSpec:
    """Parse and validate TOML text; :class:`ProtocolError` names the key, the value and what was expected."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"protocol {source} is not valid TOML: {exc}") from None
    try:
        return ProtocolSpec.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(_format_validation_error(source, exc)) from None


def builtin_names() -> tuple[str, ...]:
    """Names of the protocols shipped with vrex."""
    folder = resources.files("protocols") / "builtin"
    return tuple(sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")))


def builtin_text(name: str) -> str:
    """The TOML text of a built-in protocol (stored with every session record)."""
    if name not in builtin_names():
        raise ProtocolError(
            f"unknown protocol {name!r}: built-in protocols are {', '.join(builtin_names())}; "
            "or pass the path of a .toml protocol file"
        )
    return (resources.files("protocols") / "builtin" / f"{name}.toml").read_text(encoding="utf-8")


def load_protocol(name_or_path: str) -> tuple[ProtocolSpec, str]:
    """A built-in name or a ``.toml`` path -> (validated spec, source text)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProtocolError(f"cannot read protocol file {name_or_path}: {exc.strerror}; check the path") from None
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"protocol file {name_or_path} is not UTF-8 text (byte {exc.start}): save it as UTF-8 TOML"
            ) from None
        return parse_protocol(text, str(path)), text
    text = builtin_text(name_or_path)
    return parse_protocol(text, f"{name_or_path} (built-in)"), text
