"""The protocol file format (TOML), validated with pydantic so every error names its key and value.

A protocol says what kind of session it is (graded exposure, HRV biofeedback,
a resonance-frequency assessment), which environment to use, how long the
baseline and recovery last, how the controller climbs the hierarchy, when to ask
for SUDS and what the safety supervisor's limits are. Built-in protocols ship in
``protocols/builtin`` (every parameter commented, so ``protocols show`` is a
template a clinic can copy); clinics write their own files in the same format.

Validation is strict on purpose: a protocol is a clinical decision, so
``min_hold_s = true`` is not "1 s", an unknown key is a typo rather than
something to ignore, and a level beyond the environment is refused rather
than clamped. Environment names, kinds and level counts are checked against
:mod:`environments.registry` at load time.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocols.errors import ProtocolError


class _Section(BaseModel):
    # strict: no bool-as-number, no float-as-int, no "60" as a number; inf/nan would silently switch
    # limits off (a ceiling that never fires): refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


HOUR_S = 3600.0
SUDS_MAX = 100

SessionKind = Literal["exposure", "hrv_biofeedback", "resonance_assessment"]
ControllerKind = Literal["arousal_habituation", "manual", "target_band"]
StepUpRule = Literal["suds", "hr", "suds_and_hr", "suds_or_hr"]
#: Environment names treated as safe places when the registry does not say an environment's kind.
KNOWN_SAFE_ENVIRONMENTS = frozenset({"safe_place"})


class BaselineSpec(_Section):
    """The resting baseline every arousal value is measured against."""

    duration_s: float = Field(180.0, ge=30.0, le=HOUR_S, description=">= 3 min is the clinical standard; 30 s allowed for tests")
    extend_s: float = Field(60.0, gt=0, le=600.0, description="when the baseline is unusable, extend it by this long")
    retries: int = Field(2, ge=0, le=10, description="extensions before the therapist must decide how to go on")


class ExposureSpec(_Section):
    """Where the hierarchy starts and ends, and how a level change looks."""

    start_level: int = Field(0, ge=0, le=100)
    max_level: int | None = Field(None, ge=0, le=100)
    min_hold_s: float = Field(60.0, gt=0, le=HOUR_S)
    ramp_s: float = Field(6.0, ge=0, le=600.0)

    @model_validator(mode="after")
    def _levels_ordered(self) -> ExposureSpec:
        if self.max_level is not None and self.start_level > self.max_level:
            raise ValueError(
                f"start_level = {self.start_level}: must not be above max_level ({self.max_level}); "
                "lower start_level or raise max_level"
            )
        return self


class ControllerSpec(_Section):
    """How the engine recommends level changes (see :mod:`protocols.controller`)."""

    kind: ControllerKind = "arousal_habituation"
    step_up_rule: StepUpRule = "hr"
    step_up: Literal["auto", "confirm"] = "confirm"
    arousal_window_s: float = Field(10.0, ge=0, le=600.0, description="decisions use arousal averaged over this window")
    step_up_below_z: float = Field(1.5, ge=-10.0, le=20.0)
    step_up_sustain_s: float = Field(20.0, ge=0, le=600.0)
    step_down_above_z: float = Field(3.0, ge=-10.0, le=20.0)
    step_down_sustain_s: float = Field(10.0, ge=0, le=600.0)
    step_down_settle_s: float = Field(
        30.0, ge=0, le=600.0, description="after a level change, give the heart this long to respond before stepping down"
    )
    min_quality: float = Field(0.5, ge=0, le=1)
    suds_drop_fraction: float = Field(0.5, gt=0, le=1.0, description="SUDS must fall this share from its peak at a level")
    suds_ready_max: int = Field(20, ge=0, le=SUDS_MAX, description="a SUDS at or below this is ready whatever the peak")
    suds_step_down_min: int = Field(90, ge=1, le=SUDS_MAX, description="a SUDS at or above this steps down at once")
    confirm_expires_s: float = Field(60.0, gt=0, le=HOUR_S)
    decline_blocks_s: float = Field(120.0, ge=0, le=HOUR_S)
    reenter_block_s: float = Field(180.0, ge=0, le=HOUR_S)
    band_low_z: float = Field(1.0, ge=-10.0, le=20.0)
    band_high_z: float = Field(2.5, ge=-10.0, le=20.0)
    max_levels_per_min: float = Field(1.0, gt=0, le=60.0)
    gain_levels_per_min_per_z: float = Field(1.0, gt=0, le=60.0)
    band_min_level: float = Field(0.0, ge=0, le=100.0)
    band_max_level: float | None = Field(None, ge=0, le=100.0)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ControllerSpec:
        if self.step_up_below_z >= self.step_down_above_z:
            raise ValueError(
                f"step_up_below_z = {self.step_up_below_z:g}: must be below step_down_above_z ({self.step_down_above_z:g})"
            )
        if self.suds_ready_max >= self.suds_step_down_min:
            raise ValueError(
                f"suds_ready_max = {self.suds_ready_max}: must be below suds_step_down_min ({self.suds_step_down_min})"
            )
        if self.band_low_z >= self.band_high_z:
            raise ValueError(f"band_low_z = {self.band_low_z:g}: must be below band_high_z ({self.band_high_z:g})")
        if self.band_high_z >= self.step_down_above_z:
            raise ValueError(
                f"band_high_z = {self.band_high_z:g}: must be below step_down_above_z ({self.step_down_above_z:g}), "
                "or the band itself would trigger safety step-downs"
            )
        if self.band_max_level is not None and self.band_min_level > self.band_max_level:
            raise ValueError(
                f"band_min_level = {self.band_min_level:g}: must not be above band_max_level ({self.band_max_level:g})"
            )
        return self

    @property
    def uses_suds(self) -> bool:
        """Whether step-ups depend on SUDS ratings (then the protocol must ask for them)."""
        return self.kind == "arousal_habituation" and self.step_up_rule != "hr"


class SudsSpec(_Section):
    """When the patient is asked for SUDS (0-100)."""

    every_s: float = Field(120.0, ge=0, le=HOUR_S, description="timed prompts during a level; 0 = none")
    answer_timeout_s: float = Field(30.0, gt=0, le=600.0)
    on_entry: bool = True
    before_step_up: bool = True
    at_end: bool = True
    anticipated: bool = False
    expectancy_question: str = Field("How likely is it that you will panic at this step?", min_length=1, max_length=200)

    @property
    def asked_during_levels(self) -> bool:
        """True when some rating arrives while a level is shown (what SUDS step-up rules need)."""
        return self.every_s > 0 or self.on_entry or self.before_step_up


class RecoverySpec(_Section):
    """Paced breathing in the safe place at the end of the session."""

    duration_s: float = Field(120.0, ge=0, le=HOUR_S)
    breaths_per_min: float = Field(6.0, ge=3.0, le=12.0)

    @property
    def breathing_rate_bpm(self) -> float:
        """Deprecated name (``bpm`` is beats): therapy/session.py reads it until it switches to ``breaths_per_min``."""
        return self.breaths_per_min


class FadeSpec(_Section):
    """Transitions the patient sees."""

    fade_in_s: float = Field(1.5, ge=0, le=30.0, description="a new environment fades in from black/white over this")
    closing_s: float = Field(3.0, ge=0, le=60.0, description="after the end, the safe place stays while its fade completes")


class SafetySpec(_Section):
    """The safety supervisor's limits. The patient's age comes from the patient record, not the protocol."""

    hr_ceiling_fraction: float = Field(0.85, gt=0.3, le=1.0)
    ceiling_sustain_s: float = Field(5.0, ge=0, le=60.0)
    stale_alert_s: float = Field(15.0, gt=0, le=300.0)
    stale_alert_repeat_s: float = Field(30.0, gt=0, le=600.0)
    resume_after_safety: Literal["therapist", "auto"] = "therapist"
    auto_resume_after_s: float = Field(60.0, gt=0, le=HOUR_S)
    breaches_to_escalate: int = Field(2, ge=1, le=20)
    escalation_window_s: float = Field(600.0, gt=0, le=4 * HOUR_S)
    escalation_lowers_max_by: int = Field(1, ge=1, le=20)

    @model_validator(mode="before")
    @classmethod
    def _reject_age(cls, data: Any) -> Any:
        # Older files set it here; say where it went rather than just "unknown key".
        if isinstance(data, dict) and "age_years" in data:
            raise ValueError(
                f"age_years = {_toml_value(data['age_years'])}: age is no longer a protocol setting; it comes from "
                "the patient record, remove age_years from [safety]"
            )
        return data


class BreathingSpec(_Section):
    """HRV biofeedback: paced breathing at the patient's resonance rate."""

    duration_s: float = Field(600.0, ge=60.0, le=2 * HOUR_S)
    default_breaths_per_min: float = Field(6.0, ge=3.0, le=12.0, description="when the patient record has no resonance rate")
    calm_measure: Literal["coherence", "rsa_amplitude"] = "coherence"


class AssessmentSpec(_Section):
    """Resonance-frequency assessment: a series of paced rates, the one with the largest oscillation wins."""

    rates_breaths_per_min: tuple[float, ...] = Field((6.5, 6.0, 5.5, 5.0, 4.5), min_length=2, max_length=12)
    segment_s: float = Field(120.0, ge=60.0, le=600.0)
    settle_s: float = Field(20.0, ge=0, le=120.0, description="start of each rate left out while breathing adapts")

    @model_validator(mode="before")
    @classmethod
    def _list_to_tuple(cls, data: Any) -> Any:
        # TOML arrays are lists; strict mode only takes tuples for a tuple field.
        if isinstance(data, dict) and isinstance(data.get("rates_breaths_per_min"), list):
            data = {**data, "rates_breaths_per_min": tuple(data["rates_breaths_per_min"])}
        return data

    @model_validator(mode="after")
    def _rates_sane(self) -> AssessmentSpec:
        for rate in self.rates_breaths_per_min:
            if not 3.0 <= rate <= 12.0:
                raise ValueError(f"rates_breaths_per_min contains {rate:g}: each rate must be within 3..12 breaths/min")
        if len(set(self.rates_breaths_per_min)) != len(self.rates_breaths_per_min):
            raise ValueError(
                f"rates_breaths_per_min = {_toml_value(self.rates_breaths_per_min)}: each rate may appear only once"
            )
        if self.settle_s >= self.segment_s / 2:
            raise ValueError(f"settle_s = {self.settle_s:g}: must be under half of segment_s ({self.segment_s:g})")
        return self


class ProtocolSpec(_Section):
    """One session protocol, as written in a TOML file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = Field(min_length=1)
    kind: SessionKind = "exposure"
    environment: str
    safe_environment: str = "safe_place"
    baseline: BaselineSpec = BaselineSpec()
    exposure: ExposureSpec = ExposureSpec()
    controller: ControllerSpec = ControllerSpec()
    suds: SudsSpec = SudsSpec()
    recovery: RecoverySpec = RecoverySpec()
    fade: FadeSpec = FadeSpec()
    safety: SafetySpec = SafetySpec()
    breathing: BreathingSpec = BreathingSpec()
    assessment: AssessmentSpec = AssessmentSpec()

    @model_validator(mode="after")
    def _consistent(self) -> ProtocolSpec:
        if self.controller.uses_suds and not self.suds.asked_during_levels:
            raise ValueError(
                f"controller.step_up_rule = {_toml_value(self.controller.step_up_rule)}: needs SUDS ratings during a "
                "level, but [suds] never asks (every_s = 0, on_entry = false, before_step_up = false); "
                'ask for SUDS or use step_up_rule = "hr"'
            )
        _check_environments(self)
        return self

    @property
    def fixed_duration_s(self) -> float:
        """Baseline plus recovery: what a session spends outside exposure."""
        return self.baseline.duration_s + self.recovery.duration_s


def _is_safe(name: str, kind: str | None) -> bool:
    return kind == "safe" or (kind is None and name in KNOWN_SAFE_ENVIRONMENTS)


def _check_environments(spec: ProtocolSpec) -> None:
    """Names, kinds and level counts against the registry: refused at load time, never clamped later."""
    from environments import registry
    from environments.errors import UnknownEnvironmentError

    def describe(key: str, name: str):
        try:
            return registry.info(name)
        except UnknownEnvironmentError:
            raise ValueError(
                f"{key} = {_toml_value(name)}: unknown environment; expected one of {', '.join(registry.names())}"
            ) from None

    env = describe("environment", spec.environment)
    safe = describe("safe_environment", spec.safe_environment)
    env_kind = getattr(env, "kind", None)
    safe_kind = getattr(safe, "kind", None)
    if not _is_safe(safe.name, safe_kind):
        raise ValueError(
            f"safe_environment = {_toml_value(spec.safe_environment)}: is a {safe_kind or 'non-safe'} environment; "
            "expected an environment of kind safe (e.g. \"safe_place\")"
        )
    if spec.kind != "exposure":
        if env_kind not in ("safe", "relaxation") and not _is_safe(env.name, env_kind):
            raise ValueError(
                f"environment = {_toml_value(spec.environment)}: is a {env_kind} environment; a {spec.kind} session "
                "needs a relaxation or safe environment"
            )
        return
    if spec.environment == spec.safe_environment:
        raise ValueError(
            f"safe_environment = {_toml_value(spec.safe_environment)}: is the exposure environment itself; "
            "expected a separate safe place"
        )
    if _is_safe(env.name, env_kind):
        raise ValueError(
            f"environment = {_toml_value(spec.environment)}: is a safe place; an exposure protocol needs a phobia environment"
        )
    top = len(env.levels) - 1
    c, e = spec.controller, spec.exposure
    if c.band_max_level is not None and e.max_level is not None and c.band_max_level > e.max_level:
        raise ValueError(
            f"controller.band_max_level = {_toml_value(c.band_max_level)}: above exposure.max_level ({e.max_level}); "
            "the target band cannot go beyond the protocol's highest level"
        )
    for key, value in (
        ("exposure.start_level", spec.exposure.start_level),
        ("exposure.max_level", spec.exposure.max_level),
        ("controller.band_min_level", spec.controller.band_min_level),
        ("controller.band_max_level", spec.controller.band_max_level),
    ):
        if value is not None and value > top:
            raise ValueError(
                f"{key} = {_toml_value(value)}: beyond environment {spec.environment!r}, whose levels are 0..{top}"
            )


# -- errors ---------------------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    """A value as the user wrote it in TOML (true, "text", 1.5, inf), not as Python prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


_TYPE_WORDS = {
    "float_type": "expected a number",
    "int_type": "expected a whole number",
    "bool_type": "expected true or false",
    "string_type": 'expected text in quotes ("...")',
    "tuple_type": "expected a list of numbers, e.g. [6.0, 5.5]",
    "finite_number": "expected a finite number (inf and nan are not allowed)",
    "missing": "missing; this key is required",
}


def _section_model(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = ProtocolSpec
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _describe_error(err: dict) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "value_error":  # our own validators: the message starts with the key (relative to loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"{key}.{msg}" if key else msg
    if kind == "missing":
        return f"{key}: {_TYPE_WORDS['missing']}"
    shown = "" if isinstance(value, dict) else f" = {_toml_value(value)}"
    if kind == "extra_forbidden":
        section = _section_model(loc[:-1])
        known = ", ".join(k for k, f in section.model_fields.items() if not f.exclude) if section else ""
        where = f"[{'.'.join(loc[:-1])}]" if len(loc) > 1 else "the top level"
        return f"{key}{shown}: unknown key; expected one of {known} in {where}"
    if kind == "model_type" or (kind == "dict_type"):
        return f"{key}{shown}: expected a [{key}] table"
    words = _TYPE_WORDS.get(kind)
    if words is None:
        words = str(err["msg"]).replace("Input should be", "expected").replace("String should", "text should")
    return f"{key}{shown}: {words}"


def _format_validation_error(source: str, exc: ValidationError) -> str:
    errors = exc.errors()
    # A bad list item also makes pydantic say the list is "too short" (it drops the item): name only the item.
    item_parents = {tuple(e["loc"][:-1]) for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    errors = [e for e in errors if not (e["type"] == "too_short" and tuple(e["loc"]) in item_parents)]
    return f"protocol {source}: " + "; ".join(_describe_error(e) for e in errors)


def parse_protocol(text: str, source: str = "<text>") -> ProtocolSpec:
    """Parse and validate TOML text; :class:`ProtocolError` names the key, the value and what was expected.

    A leading UTF-8 byte-order mark (what some Windows editors write) is accepted and ignored.
    """
    text = text.removeprefix("\ufeff")
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
    """A built-in name or a ``.toml`` path -> (validated spec, source text without any byte-order mark)."""
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
        text = text.removeprefix("\ufeff")
        return parse_protocol(text, str(path)), text
    text = builtin_text(name_or_path)
    return parse_protocol(text, f"{name_or_path} (built-in)"), text
