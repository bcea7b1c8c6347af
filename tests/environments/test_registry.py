"""The environment catalogue: names, described levels, dials and clear errors."""

from __future__ import annotations

import pytest

from environments import registry
from environments.errors import LevelOutOfRangeError, RenderError, UnknownEnvironmentError


def test_names_include_the_first_milestone_environments():
    names = registry.names()
    assert "heights" in names and "safe_place" in names


def test_every_phobia_environment_has_ten_or_more_described_levels():
    for name in registry.names():
        env = registry.info(name)
        assert env.kind in {"phobia", "relaxation", "safe"}
        assert [lv.level for lv in env.levels] == list(range(len(env.levels)))
        assert all(len(lv.description) > 30 and lv.title for lv in env.levels)
        if env.kind == "phobia":
            assert len(env.levels) >= 10, name
            assert len({lv.description for lv in env.levels}) == len(env.levels)


def test_unknown_environment_names_the_value_and_lists_the_known_ones():
    with pytest.raises(UnknownEnvironmentError) as err:
        registry.info("heigths")
    msg = str(err.value)
    assert "'heigths'" in msg and "heights" in msg and "safe_place" in msg
    assert isinstance(err.value, RenderError)


@pytest.mark.parametrize("level", [-1, 13, 99, True, 2.5])
def test_level_out_of_range(level):
    with pytest.raises(LevelOutOfRangeError, match="0..12"):
        registry.check_level("heights", level)


def test_levels_in_range_pass():
    for lv in range(registry.info("heights").max_level + 1):
        registry.check_level("heights", lv)


def test_heights_levels_rise_and_protection_falls():
    levels = [dict(lv.dials) for lv in registry.info("heights").levels]
    h = [d["height_m"] for d in levels]
    assert h == sorted(h) and h[0] == 0.0 and h[-1] >= 150
    assert levels[-1]["railing_m"] < levels[1]["railing_m"]


def test_intensity_moves_dials_towards_the_next_level_and_dials_override():
    low = registry.build("heights", 4, 0.0)
    mid = registry.build("heights", 4, 0.5)
    assert low.anchor_xyz[1] == 20.0
    assert mid.anchor_xyz[1] == pytest.approx(25.0)
    over = registry.build("heights", 4, 0.0, (("height_m", 33.0),))
    assert over.anchor_xyz[1] == 33.0
