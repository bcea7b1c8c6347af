"""The ``spiders`` environment: graded levels, spider anatomy, GPU animation, rendering and steady state."""

from __future__ import annotations

import numpy as np
import pytest

from environments import registry
from environments.scenes import spiders
from environments.scene_state import SceneState

LEG_SEGMENTS = 16  # 8 legs x 2 jointed segments
LEVEL_DIALS = [dict(lv.dials) for lv in registry.info("spiders").levels]
DIAL_NAMES = registry.info("spiders").dial_names


def _legs(build):
    """Leg segment rows of a build (cylinders whose leg span, anim.w, is set)."""
    rows = build.opaque["cylinder"]
    return rows[rows[:, 27] > 0]


def _qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, w = q[:, :3], q[:, 3:4]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def _endpoints(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = np.zeros((len(rows), 3))
    half[:, 1] = rows[:, 4] / 2  # the unit cylinder spans y -0.5..0.5, scaled by the segment length
    axis = _qrot(rows[:, 6:10].astype(float), half)
    return rows[:, 0:3] - axis, rows[:, 0:3] + axis


def test_twelve_or_more_described_levels_with_every_dial():
    env = registry.info("spiders")
    assert env.kind == "phobia" and env.max_level >= 11
    assert env.dials == spiders.DIALS
    for dials in LEVEL_DIALS:
        assert set(dials) == set(DIAL_NAMES)
    assert len({lv.description for lv in env.levels}) == len(env.levels)


def test_hierarchy_goes_from_picture_and_box_to_free_running_spiders_at_the_feet():
    d = LEVEL_DIALS
    assert d[0]["picture"] == 1.0 and all(x["picture"] == 0.0 for x in d[1:])
    contained = [i for i, x in enumerate(d) if x["contained"] >= 0.5]
    assert contained == [0, 1, 2, 3]  # the picture, then a closed box coming nearer, before any free spider
    assert [x["distance_m"] for x in d[1:4]] == sorted((x["distance_m"] for x in d[1:4]), reverse=True)
    free = d[4:]
    assert free[0]["speed"] == 0.0 and free[0]["count"] == 1  # first free spider: still and alone
    first_on_table = next(i for i, x in enumerate(d) if x["on_table"] > 0)
    assert d[first_on_table]["approach"] == 1.0  # the one on the table crosses it towards the hands
    assert d[-1]["count"] == max(x["count"] for x in d)
    assert d[-1]["speed"] == max(x["speed"] for x in d) and d[-1]["approach"] == 1.0
    assert d[-1]["distance_m"] == min(x["distance_m"] for x in d)
    assert d[-1]["size_cm"] == max(x["size_cm"] for x in d)


@pytest.mark.parametrize("level", [1, 3, 9, 12, 13])
def test_every_spider_has_a_body_an_abdomen_and_eight_jointed_legs_on_the_ground(level):
    build = registry.build("spiders", level)
    count = max(1, round(LEVEL_DIALS[level]["count"]))
    legs = _legs(build)
    assert len(legs) == LEG_SEGMENTS * count
    groups = {tuple(r) for r in np.round(legs[:, 10:14], 5)}
    assert len(groups) == count  # one group (origin, yaw) per spider
    for g in groups:
        mine = legs[np.all(np.isclose(legs[:, 10:14], g, atol=1e-5), axis=1)]
        span = float(mine[0, 27])
        a, b = _endpoints(mine)
        ends = np.concatenate([a, b])
        dist = np.linalg.norm(ends[:, None] - ends[None], axis=2)
        np.fill_diagonal(dist, np.inf)
        assert int((dist.min(axis=1) < 1e-3 * span).sum()) == 2 * 8  # 8 knees, each shared by two segments
        feet = ends[:, 1] < 0.01 * span
        assert int(feet.sum()) == 8  # every leg reaches the ground
        # Body parts (spheres of the same group without a leg pivot): cephalothorax and a bigger abdomen.
        sph = build.opaque["sphere"]
        body = sph[np.all(np.isclose(sph[:, 10:14], g, atol=1e-5), axis=1) & (sph[:, 27] == 0)]
        vol = np.prod(body[:, 3:6], axis=1)
        assert len(body) >= 2 and np.sort(vol)[-1] > np.sort(vol)[-2] > 0.0002 * span**3


def test_moving_levels_animate_on_the_gpu_and_still_ones_do_not():
    still = registry.build("spiders", 4)
    walking = registry.build("spiders", 6)
    dashing = registry.build("spiders", 10)
    assert not still.dynamic and walking.dynamic and dashing.dynamic
    assert np.all(_legs(walking)[:, 14] > 0)  # walks in a circle
    assert np.all(_legs(dashing)[:, 14] < 0)  # dashes along its heading
    # Alternating tetrapod gait: half the legs in phase 0, half in phase pi.
    phases = np.round(_legs(walking)[:, 26], 4)
    assert sorted(set(phases)) == [0.0, round(np.pi, 4)] and (phases == 0).sum() == LEG_SEGMENTS // 2


def test_frames_are_not_blank_and_every_level_looks_different(gl_ctx):
    """Consecutive levels differ in the still frame, except where only the speed changes (motion: next test)."""
    from environments.renderer import HeadPose, Renderer

    size = (160, 180)
    r = Renderer(gl_ctx, size)
    try:
        imgs = []
        for lv in range(registry.info("spiders").max_level + 1):
            r.set_state(SceneState(environment="spiders", level=lv))
            r.settle()
            r.render(HeadPose.default(size), 0.0)
            imgs.append(r.read_rgb(0).astype(int))
    finally:
        r.release()
    for img in imgs:
        assert img.std() > 20
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    d = LEVEL_DIALS
    for lv in range(len(imgs) - 1):
        changed = {k for k in d[lv] if d[lv][k] != d[lv + 1][k]}
        if changed == {"speed"}:
            continue
        moved = int((np.abs(imgs[lv] - imgs[lv + 1]).sum(axis=2) > 60).sum())
        assert moved > 20, (lv, lv + 1, moved)


def test_the_spider_is_dark_and_in_view(render):
    """The big hairy spider 1.2 m away: shrinking it to 5 mm leaves rug where its dark pixels were.

    At 320x360 and a headset's 100-degree field of view a 15 cm spider covers only a few dozen pixels
    (in a 1440x1600 headset eye about 20 times more).
    """
    size = (320, 360)
    with_spider, _ = render(SceneState(environment="spiders", level=9), size=size)
    tiny, _ = render(SceneState(environment="spiders", level=9, dials=(("size_cm", 0.5),)), size=size)
    changed = np.abs(with_spider.astype(int) - tiny.astype(int)).sum(axis=2) > 60
    assert changed.sum() > 15
    ys, xs = np.nonzero(changed)
    assert 100 < xs.mean() < 220 and 120 < ys.mean() < 240  # near the middle: the gaze looks at it
    assert with_spider[changed].mean() < tiny[changed].mean() - 60  # a dark spider on a light rug


def test_walking_spiders_move_between_frames_without_a_rebuild(gl_ctx, render):
    from environments.renderer import Renderer

    r = Renderer(gl_ctx, (320, 360))
    try:
        diffs = {}
        for lv in (4, 7, 10):
            a, _ = render(SceneState(environment="spiders", level=lv), renderer=r, size=(320, 360), t_s=0.0)
            rebuilds = r.rebuilds
            b, _ = render(SceneState(environment="spiders", level=lv), renderer=r, size=(320, 360), t_s=0.7)
            assert r.rebuilds == rebuilds  # motion comes from the frame time, not from new instance data
            diffs[lv] = int((np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 40).sum())
        assert diffs[7] > 10 and diffs[10] > 10, diffs
        assert diffs[4] < min(diffs[7], diffs[10]) / 3  # a still spider only twitches a leg
    finally:
        r.release()


def test_intensity_moves_towards_the_next_level_and_dials_override():
    low = LEVEL_DIALS[6]
    nxt = LEVEL_DIALS[7]
    mid = registry.dial_values("spiders", 6, 0.5, ())
    assert mid["distance_m"] == pytest.approx((low["distance_m"] + nxt["distance_m"]) / 2)
    over = registry.build("spiders", 8, 0.0, (("count", 2.0),))
    assert len(_legs(over)) == 2 * LEG_SEGMENTS


def test_no_growth_of_python_or_gl_objects_in_steady_state(gl_ctx):
    from bench.render import leak_check

    result = leak_check(gl_ctx, "spiders", registry.info("spiders").max_level, 1000)
    assert result["gl_objects_growth"] == 0
    assert result["python_objects_growth"] <= 0
    assert result["python_bytes_growth"] < 2048


def test_bench_render_quick_covers_spiders(tmp_path):
    import json

    import main

    out = tmp_path / "bench.json"
    assert main.run(["bench", "render", "--quick", "--environment", "spiders", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["level"] for r in rows] == [0, registry.info("spiders").max_level]
    for row in rows:
        assert row["environment"] == "spiders"
        assert 3 <= row["draw_calls_per_eye"] <= 40 and row["instances"] > 100
