"""heights: the untracked default view shows what each level is about (railing, edge, drop)."""

from __future__ import annotations

import math

import pytest

from environments import registry

HALF_FOV_RAD = math.radians(50.0)  # HeadPose.default: 100 degrees vertical


@pytest.mark.parametrize("level", range(3, 10))
def test_railing_top_sits_in_the_lower_part_of_the_default_view(level):
    d = dict(registry.info("heights").levels[level].dials)
    build = registry.build("heights", level)
    below = math.atan2(1.65 - d["railing_m"], d["edge_m"])  # angle below the horizon to the railing's top
    offset = below - (-build.gaze_pitch_rad)  # below the view centre
    assert 0.1 < offset < HALF_FOV_RAD - 0.1, (level, offset)
    # Looking over the railing: the street within the view lies beyond the edge (the drop is on screen).
    assert -build.gaze_pitch_rad - HALF_FOV_RAD < math.atan2(build.anchor_xyz[1], 60.0)


@pytest.mark.parametrize("level", [10, 11, 12])
def test_glass_floor_levels_look_down_through_the_glass(level):
    assert registry.build("heights", level).gaze_pitch_rad <= -0.9
