"""The ``enclosed`` (claustrophobia) and ``public_speaking`` (social anxiety) environments.

Declared hierarchy (levels, dials), default views that show the feared element
rendered through the real registry, renderer and moderngl/EGL, and motion that
comes from the frame time. Monotone fear, every level in stereo and small
intensity steps are tested for every environment in test_environments.
"""

from __future__ import annotations

import numpy as np
import pytest

from environments import registry
from environments.scene_state import SceneState

NEW = ("enclosed", "public_speaking")


def _changed(a: np.ndarray, b: np.ndarray, threshold: int = 60) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > threshold


# ----------------------------------------------------------------------------- declarations
@pytest.mark.parametrize("name", NEW)
def test_found_by_the_package_scan_with_ten_or_more_described_levels_and_full_dials(name):
    assert name in registry.names()
    env = registry.get(name)
    env.check()
    info = registry.info(name)
    assert info.kind == "phobia" and info.targets and info.max_level >= 9
    assert len({lv.description for lv in info.levels}) == len(info.levels)  # every level says what is new
    assert len({lv.title for lv in info.levels}) == len(info.levels)
    for d in info.dials:
        assert d.unit is not None and d.min < d.max and d.min <= d.default <= d.max and len(d.description) > 10
    assert sum(d.fear_relevant for d in info.dials) >= 5


@pytest.mark.parametrize("name", NEW)
def test_the_patient_never_moves_between_levels(name):
    """Comfort: the scene is built around fixed feet, so a level change never carries the viewpoint along."""
    for lv in range(registry.info(name).max_level + 1):
        build = registry.build(name, lv)
        assert build.anchor_xyz == (0.0, 0.0, 0.0) and build.anchor_yaw_rad == 0.0
        assert build.view_eye_height_m is None and build.gaze_yaw_rad == 0.0
        assert abs(build.gaze_pitch_rad) < 0.4


def test_enclosed_hierarchy_narrows_closes_moves_darkens_stalls_and_crowds():
    d = [dict(lv.dials) for lv in registry.info("enclosed").levels]
    assert d[0]["door_open_fraction"] == 1.0 and d[0]["lift_moving"] == 0.0 and d[0]["occupants"] == 0
    first_closed = next(i for i, x in enumerate(d) if x["door_open_fraction"] == 0.0)
    first_moving = next(i for i, x in enumerate(d) if x["lift_moving"] > 0.0)
    first_stall = next(i for i, x in enumerate(d) if x["stalled"] > 0.0)
    assert first_closed < first_moving < first_stall  # shut in, then leaving the floor, then stuck
    top = d[-1]
    assert top["width_m"] < 1.0 and top["ceiling_m"] < 1.9 and top["light_level"] <= 0.05
    assert top["stalled"] == 1.0 and top["occupants"] == max(x["occupants"] for x in d)


def test_public_speaking_hierarchy_grows_from_a_few_attentive_people_to_a_full_critical_hall():
    d = [dict(lv.dials) for lv in registry.info("public_speaking").levels]
    assert d[0]["audience"] <= 3 and d[0]["bored"] == 0 and d[0]["critical"] == 0 and d[0]["lectern"] == 1.0
    assert d[-1]["audience"] == registry.get("public_speaking").dial("audience").max  # every seat taken
    assert d[-1]["gaze"] == 1.0 and d[-1]["bored"] > 0.25 and d[-1]["critical"] > 0.25 and d[-1]["lectern"] == 0


def test_listeners_heads_carry_their_mood_and_the_gaze_dial_for_the_vertex_shader():
    from environments.scenes import public_speaking as ps

    build = registry.build("public_speaking", 9)
    rows = np.concatenate([a for a in build.opaque.values()])
    heads = rows[rows[:, 27] >= ps.HEAD]
    people = round(dict(registry.info("public_speaking").levels[9].dials)["audience"])
    head_spheres = build.opaque["sphere"][build.opaque["sphere"][:, 27] >= ps.HEAD]
    assert len({tuple(r) for r in np.round(head_spheres[:, 10:13], 4)}) == people  # one head group per listener
    assert np.allclose(heads[:, 27], ps.HEAD + 1.0)  # gaze 1 at this level
    modes = set(np.unique(heads[:, 25]))
    assert modes == {ps.ATTENTIVE, ps.BORED, ps.CRITICAL}
    # Heads turn about the neck, above the shoulders; the group faces the stage (yaw pi).
    assert np.all(heads[:, 24] > 1.0) and np.allclose(heads[:, 13], np.pi)


def test_the_countdown_is_four_seven_segment_digits_and_a_colon_counting_the_talk():
    from environments.scenes import public_speaking as ps

    for lv in (0, 11):
        build = registry.build("public_speaking", lv)
        cubes = build.opaque["cube"]
        segs = cubes[cubes[:, 27] == ps.TIMER]
        assert len(segs) == 4 * 7 + 2
        assert np.allclose(segs[:, 25], dict(registry.info("public_speaking").levels[lv].dials)["talk_min"] * 60)
        assert np.all(segs[:, 22] >= 1.0)  # self-lit digits


# ----------------------------------------------------------------------------- rendering
# (test_environments.py renders every level of every environment and checks intensity steps)


@pytest.mark.gl
def test_the_enclosure_fills_the_top_levels_default_view(render):
    """Opening the car right up (widest, deepest, highest, doors open, bright, empty, parked) changes almost
    every pixel of the top level's view: walls, ceiling, doors and passengers are what the frame shows. The
    passengers alone cover a good part of it."""
    top = registry.info("enclosed").max_level
    size = (160, 180)
    shown, _ = render(SceneState(environment="enclosed", level=top), size=size)
    opened, _ = render(SceneState(environment="enclosed", level=top, dials=(
        ("width_m", 3.5), ("depth_m", 3.5), ("ceiling_m", 3.2), ("door_open_fraction", 1.0),
        ("light_level", 1.0), ("occupants", 0.0), ("lift_moving", 0.0), ("stalled", 0.0))), size=size)
    assert _changed(shown, opened, 30).mean() > 0.6
    alone, _ = render(SceneState(environment="enclosed", level=top, dials=(("occupants", 0.0),)), size=size)
    people = _changed(shown, alone, 30)
    assert people.mean() > 0.15
    assert shown.mean() < opened.mean() - 40  # and it is dark in there


@pytest.mark.gl
def test_the_audience_fills_the_top_levels_default_view_and_sits_in_the_middle(render):
    top = registry.info("public_speaking").max_level
    size = (160, 180)
    shown, _ = render(SceneState(environment="public_speaking", level=top), size=size)
    empty, _ = render(SceneState(environment="public_speaking", level=top, dials=(("audience", 0.0),)), size=size)
    mask = _changed(shown, empty, 40)
    assert mask.mean() > 0.2
    ys, xs = np.nonzero(mask)
    assert 0.3 < xs.mean() / mask.shape[1] < 0.7 and 0.3 < ys.mean() / mask.shape[0] < 0.75
    # Level 0's two colleagues are small but in view, not cut off at the edge.
    few, _ = render(SceneState(environment="public_speaking", level=0), size=size)
    none, _ = render(SceneState(environment="public_speaking", level=0, dials=(("audience", 0.0),)), size=size)
    m0 = _changed(few, none, 40)
    assert m0.sum() > 20
    ys, xs = np.nonzero(m0)
    assert 0.15 < xs.mean() / m0.shape[1] < 0.85


@pytest.mark.gl
def test_the_timer_and_the_lectern_are_in_the_speakers_default_view(render):
    size = (160, 180)
    lv = 3
    shown, _ = render(SceneState(environment="public_speaking", level=lv), size=size)
    other, _ = render(SceneState(environment="public_speaking", level=lv, dials=(("talk_min", 17.0),)), size=size)
    digits = _changed(shown, other, 60)
    assert digits.sum() > 10  # 05:00 and 17:00 differ where the digits are
    bare, _ = render(SceneState(environment="public_speaking", level=lv, dials=(("lectern", 0.0),)), size=size)
    lectern = _changed(shown, bare, 40)
    assert lectern.mean() > 0.05
    assert np.nonzero(lectern)[0].mean() > 0.6 * size[1]  # at the bottom of the view, in front of the patient


@pytest.mark.gl
def test_heads_turn_in_the_vertex_shader_when_only_the_gaze_dial_changes(render):
    """Builds that differ only in the gaze value of the head rows render differently: the turning is on the GPU."""
    lv = 5
    a = registry.build("public_speaking", lv, dials=(("gaze", 1.0),))
    b = registry.build("public_speaking", lv, dials=(("gaze", 0.0),))
    for mesh in a.opaque:
        ra, rb = a.opaque[mesh], b.opaque[mesh]
        assert ra.shape == rb.shape
        same = np.isclose(ra, rb)
        assert np.all(same[:, :27])  # positions, sizes, colours, groups: identical
    size = (160, 180)
    staring, _ = render(SceneState(environment="public_speaking", level=lv, dials=(("gaze", 1.0),)), size=size, t_s=3.0)
    looking_away, _ = render(SceneState(environment="public_speaking", level=lv, dials=(("gaze", 0.0),)), size=size,
                             t_s=3.0)
    assert _changed(staring, looking_away, 40).sum() > 30


@pytest.mark.gl
@pytest.mark.parametrize(("name", "level"), [("enclosed", 4), ("enclosed", 8), ("public_speaking", 9)])
def test_what_moves_in_the_real_thing_moves_between_frames_without_a_rebuild(gl_ctx, render, name, level):
    from environments.renderer import Renderer

    size = (160, 180)
    r = Renderer(gl_ctx, size)
    try:
        frames = [render(SceneState(environment=name, level=level), renderer=r, size=size, t_s=0.0)[0]]
        rebuilds = r.rebuilds
        for t in (2.3, 4.1):
            frames.append(render(SceneState(environment=name, level=level), renderer=r, size=size, t_s=t)[0])
            assert r.rebuilds == rebuilds  # motion comes from the frame time, not from new instance data
    finally:
        r.release()
    moved = max(_changed(frames[0], f, 40).sum() for f in frames[1:])
    assert moved > 8, (name, level, moved)


@pytest.mark.gl
def test_a_parked_empty_lift_is_still(gl_ctx, render):
    from environments.renderer import Renderer

    size = (96, 108)
    r = Renderer(gl_ctx, size)
    try:
        a, _ = render(SceneState(environment="enclosed", level=0), renderer=r, size=size, t_s=0.0)
        b, _ = render(SceneState(environment="enclosed", level=0), renderer=r, size=size, t_s=3.7)
    finally:
        r.release()
    assert _changed(a, b, 20).sum() == 0


def test_envs_list_shows_both_with_their_levels(capsys):
    import json

    import main

    assert main.run(["envs", "list", "--json"]) == 0
    cat = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    for name in NEW:
        assert len(cat[name]["levels"]) >= 10 and cat[name]["kind"] == "phobia"
        assert all(d["description"] for d in cat[name]["dials"])
