"""Protocol files: strict types, unknown keys, levels and safe places checked against the environments.

Each malformed file must fail with one line naming the key, the value and what was expected.
"""

from __future__ import annotations

import pytest

from protocols.errors import ProtocolError
from protocols.model import builtin_names, builtin_text, load_protocol, parse_protocol

HEAD = 'name = "x"\ntitle = "t"\nenvironment = "heights"\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        # wrong types: strict, never coerced
        (HEAD + "[exposure]\nmin_hold_s = true\n", "exposure.min_hold_s = true: expected a number"),
        (HEAD + "[exposure]\nstart_level = 1.0\n", "exposure.start_level = 1.0: expected a whole number"),
        (HEAD + '[exposure]\nramp_s = "6"\n', 'exposure.ramp_s = "6": expected a number'),
        (HEAD + "[suds]\non_entry = 1\n", "suds.on_entry = 1: expected true or false"),
        (HEAD + "[controller]\nsuds_ready_max = 20.5\n", "controller.suds_ready_max = 20.5: expected a whole number"),
        (HEAD + "exposure = 3\n", "exposure = 3: expected a [exposure] table"),
        # unknown keys and values
        (HEAD + "[exposure]\nmin_hold = 3\n", "exposure.min_hold = 3: unknown key; expected one of start_level"),
        (HEAD + "colour = 1\n", "colour = 1: unknown key; expected one of name, title"),
        (HEAD + "[controller]\nstep_up_rule = \"sud\"\n", "controller.step_up_rule = \"sud\": expected 'suds', 'hr'"),
        (HEAD + "[safety]\nresume_after_safety = \"never\"\n", "safety.resume_after_safety = \"never\""),
        # thresholds in the wrong order
        (HEAD + "[controller]\nstep_up_below_z = 4.0\n", "controller.step_up_below_z = 4: must be below step_down_above_z (3)"),
        (HEAD + "[controller]\nsuds_ready_max = 95\n", "controller.suds_ready_max = 95: must be below suds_step_down_min (90)"),
        (HEAD + "[controller]\nband_low_z = 2.7\n", "controller.band_low_z = 2.7: must be below band_high_z (2.5)"),
        (HEAD + "[exposure]\nmax_level = 6\n[controller]\nband_max_level = 8.0\n",
         "controller.band_max_level = 8.0: above exposure.max_level (6)"),
        (HEAD + "[exposure]\nstart_level = 5\nmax_level = 3\n", "exposure.start_level = 5: must not be above max_level (3)"),
        # levels outside the environment (heights has 0..12): refused, not clamped
        (HEAD + "[exposure]\nstart_level = 13\n", "exposure.start_level = 13: beyond environment 'heights', whose levels are 0..12"),
        (HEAD + "[exposure]\nmax_level = 40\n", "exposure.max_level = 40: beyond environment 'heights', whose levels are 0..12"),
        # safe places
        (HEAD + 'safe_environment = "heights"\n', 'safe_environment = "heights": is a phobia environment; expected an environment of kind safe'),
        (HEAD + 'safe_environment = "spiders"\n', 'safe_environment = "spiders": is a phobia environment'),
        ('name = "x"\ntitle = "t"\nenvironment = "safe_place"\n', 'safe_environment = "safe_place": is the exposure environment itself'),
        (HEAD + 'safe_environment = "meadow"\n', 'safe_environment = "meadow": unknown environment; expected one of '),
        ('name = "x"\ntitle = "t"\nenvironment = "volcano"\n', 'environment = "volcano": unknown environment'),
        # a rule that needs SUDS in a protocol that never asks for it
        (HEAD + '[controller]\nstep_up_rule = "suds_and_hr"\n[suds]\nevery_s = 0.0\non_entry = false\nbefore_step_up = false\n',
         'controller.step_up_rule = "suds_and_hr": needs SUDS ratings during a level, but [suds] never asks'),
        # age moved to the patient record
        (HEAD + "[safety]\nage_years = 35\n", "safety.age_years = 35: age is no longer a protocol setting"),
        # breathing rates
        ('name = "x"\ntitle = "t"\nkind = "resonance_assessment"\nenvironment = "safe_place"\n[assessment]\n'
         "rates_breaths_per_min = [6.0, 20.0]\n", "rates_breaths_per_min contains 20: each rate must be within 3..12"),
        ('name = "x"\ntitle = "t"\nkind = "resonance_assessment"\nenvironment = "safe_place"\n[assessment]\n'
         'rates_breaths_per_min = [6.0, "a"]\n', 'assessment.rates_breaths_per_min.1 = "a": expected a number'),
        ('name = "x"\ntitle = "t"\nkind = "hrv_biofeedback"\nenvironment = "heights"\n',
         'environment = "heights": is a phobia environment; a hrv_biofeedback session needs a relaxation or safe environment'),
        (HEAD + "[recovery]\nbreathing_rate_bpm = 6.0\n", "recovery.breathing_rate_bpm = 6.0: unknown key; expected one of duration_s, breaths_per_min"),
    ],
)
def test_malformed_protocol_is_rejected_with_one_useful_line(toml, expected):
    with pytest.raises(ProtocolError) as err:
        parse_protocol(toml, "clinic.toml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("protocol clinic.toml: ")
    assert expected in message, message


def test_several_problems_are_all_named_on_one_line():
    with pytest.raises(ProtocolError) as err:
        parse_protocol(HEAD + "[exposure]\nmin_hold_s = true\nramp_s = -1.0\n", "clinic.toml")
    message = str(err.value)
    assert "\n" not in message and "exposure.min_hold_s = true" in message and "exposure.ramp_s = -1.0" in message


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + "[baseline]\nduration_s = 60\n").encode())
    spec, text = load_protocol(str(path))
    assert spec.baseline.duration_s == 60.0 and text.startswith("name")
    assert parse_protocol("\ufeff" + HEAD).name == "x"


def test_integers_are_accepted_for_seconds():
    spec = parse_protocol(HEAD + "[exposure]\nmin_hold_s = 90\n")
    assert spec.exposure.min_hold_s == 90.0 and isinstance(spec.exposure.min_hold_s, float)


def test_defaults_are_documented_values():
    spec = parse_protocol(HEAD)
    assert spec.kind == "exposure" and spec.safe_environment == "safe_place"
    assert spec.controller.suds_drop_fraction == 0.5 and spec.controller.suds_step_down_min == 90
    assert spec.safety.resume_after_safety == "therapist" and spec.safety.auto_resume_after_s == 60.0
    assert spec.baseline.extend_s == 60.0 and spec.baseline.retries == 2
    assert spec.recovery.breaths_per_min == 6.0
    assert spec.recovery.breathing_rate_bpm == 6.0  # deprecated alias until therapy/session.py switches


@pytest.mark.parametrize("name", ["heights-graded", "spiders-graded"])
def test_graded_builtins_use_suds_and_hr_with_confirmation(name):
    spec, _ = load_protocol(name)
    assert spec.kind == "exposure"
    assert spec.controller.step_up_rule == "suds_and_hr" and spec.controller.step_up == "confirm"
    assert spec.suds.asked_during_levels


def test_breathing_builtins():
    hrv, _ = load_protocol("hrv-biofeedback")
    assert hrv.kind == "hrv_biofeedback" and hrv.breathing.default_breaths_per_min == 6.0
    res, _ = load_protocol("resonance-assessment")
    assert res.kind == "resonance_assessment"
    assert res.assessment.rates_breaths_per_min == (6.5, 6.0, 5.5, 5.0, 4.5) and res.assessment.segment_s == 120.0


@pytest.mark.parametrize("name", ["heights-graded", "spiders-graded", "hrv-biofeedback", "resonance-assessment"])
def test_every_builtin_parameter_has_a_comment(name):
    """``protocols show`` is the template clinics copy: each key = value line follows a comment line."""
    lines = builtin_text(name).splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "[")) and "=" in stripped:
            before = lines[i - 1].strip() if i else ""
            assert before.startswith("#") or "=" in before and lines[i - 2].strip().startswith("#"), (name, line)


def test_builtin_names():
    assert set(builtin_names()) >= {"heights-graded", "spiders-graded", "hrv-biofeedback", "resonance-assessment"}


@pytest.mark.parametrize("name", ["heights-graded", "spiders-graded"])
def test_graded_builtins_are_complete_templates(name):
    """Every setting of every section an exposure uses appears in the file (optional ones as a commented example)."""
    import tomllib

    from protocols.model import ProtocolSpec

    text = builtin_text(name)
    data = tomllib.loads(text)
    for section in ("baseline", "exposure", "controller", "suds", "recovery", "fade", "safety"):
        model = ProtocolSpec.model_fields[section].annotation
        for key, field in model.model_fields.items():
            if field.exclude:
                continue
            assert key in data[section] or f"# {key} = " in text, f"[{section}] {key} is not in {name}"
