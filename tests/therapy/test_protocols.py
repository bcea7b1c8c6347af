"""Protocol files: built-ins load, bad files fail with the key, the value and the fix."""

from __future__ import annotations

import pytest

from protocols.errors import ProtocolError
from protocols.model import builtin_names, load_protocol, parse_protocol


@pytest.mark.parametrize(("name", "environment"), [("heights-graded", "heights"), ("spiders-graded", "spiders")])
def test_builtin_protocols_name_real_environments(name, environment):
    from environments import registry

    spec, _ = load_protocol(name)
    assert spec.name == name and spec.environment == environment
    assert registry.info(spec.environment).kind == "phobia" and registry.info(spec.safe_environment).kind == "safe"


def test_builtin_heights_protocol_loads():
    assert "heights-graded" in builtin_names()
    spec, text = load_protocol("heights-graded")
    assert spec.environment == "heights" and spec.safe_environment == "safe_place"
    assert spec.baseline.duration_s >= 180  # >= 3 min rest (REFERENCE.md)
    assert "[controller]" in text


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('name = "x"\ntitle = "t"\nenvironment = "heights"\n[baseline]\nduration_s = 5\n',
         "baseline.duration_s = 5"),
        ('name = "x"\ntitle = "t"\nenvironment = "heights"\n[exposure]\nmin_hold = 3\n',
         "exposure.min_hold = 3: unknown key; expected one of start_level, max_level, min_hold_s, ramp_s in [exposure]"),
        ('name = "x"\ntitle = "t"\n', "environment: missing; this key is required"),
        ('name = "x"\ntitle = "t"\nenvironment = "heights"\n[controller]\nstep_up_below_z = 4\n',
         "controller.step_up_below_z = 4: must be below step_down_above_z (3)"),
        ('name = "Bad Name"\ntitle = "t"\nenvironment = "heights"\n', 'name = "Bad Name"'),
        ("name = \n", "not valid TOML"),
        ('name = "x"\ntitle = "t"\nenvironment = "heights"\n[safety]\nceiling_sustain_s = inf\n',
         "safety.ceiling_sustain_s = inf"),
        ('name = "x"\ntitle = "t"\nenvironment = "heights"\n[controller]\nstep_down_above_z = nan\n',
         "controller.step_down_above_z = nan"),
        ('name = "x"\ntitle = "t"\nenvironment = "heights"\n[exposure]\nmin_hold_s = inf\n',
         "exposure.min_hold_s = inf"),
    ],
)
def test_bad_protocol_names_key_and_value(toml, expected):
    with pytest.raises(ProtocolError) as err:
        parse_protocol(toml, "clinic.toml")
    assert "clinic.toml" in str(err.value) and expected in str(err.value)


def test_unknown_protocol_lists_builtins(tmp_path):
    with pytest.raises(ProtocolError, match="built-in protocols are dogs-graded, enclosed-graded, heights-graded, hrv-biofeedback, public-speaking-graded, resonance-assessment, spiders-graded"):
        load_protocol("spiderz")
    with pytest.raises(ProtocolError, match="cannot read protocol file"):
        load_protocol(str(tmp_path / "missing.toml"))


def test_protocol_file_from_disk(tmp_path):
    path = tmp_path / "short.toml"
    path.write_text('name = "short"\ntitle = "Short"\nenvironment = "heights"\n[baseline]\nduration_s = 60\n')
    spec, text = load_protocol(str(path))
    assert spec.baseline.duration_s == 60 and spec.exposure.min_hold_s == 60 and text.startswith("name")


def test_protocol_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "x"\ntitle = "Höhen"\nenvironment = "heights"\n'.encode("latin-1"))
    with pytest.raises(ProtocolError, match="is not UTF-8 text"):
        load_protocol(str(path))
