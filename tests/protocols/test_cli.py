"""``python main.py protocols list | show NAME | check FILE``."""

from __future__ import annotations

import main
from protocols.model import builtin_text, parse_protocol


def test_list_names_every_builtin(capsys):
    assert main.run(["protocols", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("heights-graded", "spiders-graded", "hrv-biofeedback", "resonance-assessment"):
        assert name in out
    assert "resonance_assessment" in out and "safe_place" in out


def test_show_prints_the_builtin_file_exactly_and_it_checks(capsys, tmp_path):
    assert main.run(["protocols", "show", "heights-graded"]) == 0
    out = capsys.readouterr().out
    assert out == builtin_text("heights-graded")
    assert "# A SUDS rating at or above this steps down at once" in out
    copy = tmp_path / "clinic.toml"
    copy.write_text(out.replace('name = "heights-graded"', 'name = "clinic-heights"'))
    assert main.run(["protocols", "check", str(copy)]) == 0
    assert "valid exposure protocol 'clinic-heights'" in capsys.readouterr().out
    assert parse_protocol(out).name == "heights-graded"


def test_check_rejects_a_bad_file_with_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntitle = "t"\nenvironment = "heights"\n[exposure]\nmin_hold_s = true\n')
    assert main.run(["protocols", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vrex: error: protocol ")
    assert "exposure.min_hold_s = true: expected a number" in err


def test_show_unknown_name_is_a_user_error(capsys):
    assert main.run(["protocols", "show", "spiderz"]) == 2
    assert "unknown protocol 'spiderz'" in capsys.readouterr().err
