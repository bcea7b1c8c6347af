"""The research options of ``run``/``demo`` parse as documented; a bad station name is one line and exit 2."""

from __future__ import annotations

import pytest

from main import build_parser, run


def test_no_lsl_and_station_parse():
    args = build_parser().parse_args(["demo", "--no-lsl", "--station", "lab 1/booth"])
    assert args.lsl is False and args.station == "lab-1-booth"
    args = build_parser().parse_args(["run", "--patient", "P01", "--sensor", "sim"])
    assert args.lsl is True and args.station is None


@pytest.mark.parametrize("command", [["demo"], ["run", "--patient", "P01", "--sensor", "sim"]])
def test_a_station_without_letters_is_refused_in_one_line(command, capsys):
    with pytest.raises(SystemExit) as exc:
        run([*command, "--station", "///"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert err.startswith("vrex: error:") and "station name '///' has no letters or digits" in err
