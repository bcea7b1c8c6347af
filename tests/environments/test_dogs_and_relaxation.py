"""The dogs phobia environment and the beach and forest relaxation environments.

Everything renders through the real registry, renderer and moderngl/EGL at
small sizes; masks come from renders that differ in one dial (the dogs' coat
colour, the pacer on or off), so they measure exactly the thing in question.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from environments import registry
from environments.scene_state import SceneState
from tests.environments.conftest import mean_abs_diff

RELAXATION = ("beach", "forest")
ALL = ("dogs", *RELAXATION)


def _mask(a: np.ndarray, b: np.ndarray, threshold: int = 60) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > threshold


def _luma(img: np.ndarray) -> np.ndarray:
    return img[..., :3].astype(float) @ np.array([0.2126, 0.7152, 0.0722])


# ----------------------------------------------------------------------------- declarations
def test_the_three_are_found_by_the_package_scan_with_their_kinds():
    names = registry.names()
    assert set(ALL) <= set(names)
    assert registry.info("dogs").kind == "phobia" and registry.info("dogs").targets == ("cynophobia",)
    for name in RELAXATION:
        assert registry.info(name).kind == "relaxation"
    for name in ALL:
        env = registry.get(name)
        env.check()
        for d in env.dials:
            assert d.min < d.max and d.min <= d.default <= d.max and len(d.description) > 20, (name, d.name)
        for lv in env.levels:
            assert lv.title and len(lv.description) > 40, (name, lv.title)


def test_dogs_has_at_least_ten_described_levels_and_the_dials_a_therapist_expects():
    info = registry.info("dogs")
    assert len(info.levels) >= 10
    fear = {d.name: d for d in info.dials if d.fear_relevant}
    assert {"distance_m", "dog_size_m", "activity", "barking", "leash", "fence", "count", "picture"} <= set(fear)
    assert fear["distance_m"].unit == "m" and not fear["distance_m"].fear_rises_with_value
    assert not fear["leash"].fear_rises_with_value and not fear["fence"].fear_rises_with_value
    top = registry.dial_values("dogs", info.max_level)
    assert top["distance_m"] <= 1.0 and top["dog_size_m"] >= 0.7 and top["barking"] == 1.0 and top["leash"] == 0.0


@pytest.mark.parametrize("name", RELAXATION)
def test_relaxation_scenes_declare_the_biofeedback_and_pacer_dials(name):
    env = registry.get(name)
    calm = env.dial("calm_response")
    assert (calm.min, calm.max, calm.default, calm.fear_relevant) == (0.0, 1.0, 0.0, False)
    rate = env.dial("breaths_per_min")
    assert (rate.unit, rate.min, rate.max, rate.default) == ("breaths/min", 4.0, 7.0, 6.0)
    assert not any(d.fear_relevant for d in env.dials)


def test_dogs_viewpoint_never_moves_and_the_default_view_turns_gently():
    """Comfort: the patient's standpoint is the same at every setting; the untracked view changes in small steps."""
    prev = None
    for lv in range(registry.info("dogs").max_level + 1):
        for i in range(10):
            b = registry.build("dogs", lv, i / 10)
            assert b.anchor_xyz == (0.0, 0.0, 0.0) and b.anchor_yaw_rad == 0.0
            view = np.array([b.gaze_pitch_rad, b.gaze_yaw_rad, math.radians(b.view_fovy_deg)])
            if prev is not None:
                assert np.all(np.abs(view - prev) < [0.12, 0.3, math.radians(8.0)]), (lv, i, view - prev)
            prev = view


# ----------------------------------------------------------------------------- every level renders
# (test_environments.py renders every level of dogs, beach and forest with the other environments and checks
# a small intensity step of dogs)


# ----------------------------------------------------------------------------- the dogs in view
def _dog_mask(render, level: int, size=(160, 180), eye: int = 0, t_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixels that change when the nearest dog's coat goes from cream to black: the dog, and nothing else."""
    light = render(SceneState(environment="dogs", level=level, dials=(("coat", 0.0),)), size=size, t_s=t_s)
    dark = render(SceneState(environment="dogs", level=level, dials=(("coat", 1.0),)), size=size, t_s=t_s)
    return _mask(light[eye], dark[eye]), light[eye]


@pytest.mark.gl
def test_the_top_levels_dog_fills_a_large_part_of_its_default_view(render):
    top = registry.info("dogs").max_level
    mask, _ = _dog_mask(render, top)
    assert mask.mean() > 0.05  # the nearest dog alone (the other two keep their coats)
    ys, xs = np.nonzero(mask)
    assert xs.max() - xs.min() > 0.2 * mask.shape[1] and ys.max() - ys.min() > 0.3 * mask.shape[0]


@pytest.mark.gl
def test_every_level_shows_its_dog_in_the_view_and_nearer_levels_show_it_bigger(render):
    shares = []
    for lv in range(registry.info("dogs").max_level + 1):
        mask, _ = _dog_mask(render, lv)
        assert mask.sum() > 25, lv  # also the photo and the dog 25 m away behind the railing
        ys, xs = np.nonzero(mask)
        assert 0.15 < xs.mean() / mask.shape[1] < 0.85 and 0.1 < ys.mean() / mask.shape[0] < 0.9, lv
        shares.append(mask.mean())
    assert shares[-1] > 4 * shares[1]  # the framing keeps distance visible: far dogs are smaller


@pytest.mark.gl
def test_the_eyes_see_the_near_dog_with_the_expected_disparity(render):
    """Left eye sees a near object further right; the shift matches ipd * focal / distance within a factor of 2."""
    lv = 8
    size = (160, 180)
    left_mask, _ = _dog_mask(render, lv, size, eye=0)
    right_mask, _ = _dog_mask(render, lv, size, eye=1)
    shift = np.nonzero(left_mask)[1].mean() - np.nonzero(right_mask)[1].mean()
    b = registry.build("dogs", lv)
    stop = np.array(registry.get("dogs").level_values(lv)["distance_m"])
    focal_px = (size[1] / 2) / math.tan(math.radians(b.view_fovy_deg) / 2)
    depth_m = math.hypot(float(stop) + 0.5, 1.65 - 0.5)  # about the middle of the dog from the eyes
    expected = 0.064 * focal_px / depth_m
    assert expected / 2 < shift < expected * 2, (shift, expected)


@pytest.mark.gl
def test_the_dogs_move_tail_legs_head(render):
    """Animation is on the GPU: the same level at two times differs where the dog is, not elsewhere much."""
    _, first = _dog_mask(render, 7)
    later = render(SceneState(environment="dogs", level=7, dials=(("coat", 0.0),)), size=(160, 180), t_s=0.8)[0]
    moved = _mask(first, later)
    assert moved.sum() > 40
    # A still dog on the lead (level 1 has activity 0) only sways its tail gently.
    assert registry.get("dogs").level_values(1)["activity"] == 0.0


# ----------------------------------------------------------------------------- relaxation
@pytest.mark.gl
@pytest.mark.parametrize("name", RELAXATION)
def test_calm_response_lifts_the_haze_and_warms_the_light(name, render):
    """What the session sends during HRV biofeedback: ("calm_response", value) in SceneState.dials."""
    size = (120, 135)
    tense, _ = render(SceneState(environment=name, level=1, dials=(("calm_response", 0.0),)), size=size)
    half, _ = render(SceneState(environment=name, level=1, dials=(("calm_response", 0.5),)), size=size)
    calm, _ = render(SceneState(environment=name, level=1, dials=(("calm_response", 1.0),)), size=size)
    far = slice(0, int(0.6 * size[1]))  # the far part of the view (sky, sea and headlands; trees): where haze is
    contrast = [_luma(img)[far].std() for img in (tense, half, calm)]
    warmth = [float(img[..., 0].mean() - img[..., 2].mean()) for img in (tense, half, calm)]
    assert contrast[0] < contrast[1] < contrast[2], contrast  # less haze: higher contrast
    assert contrast[2] > contrast[0] * 1.2, contrast
    assert warmth[0] < warmth[1] < warmth[2], warmth  # warmer light
    assert mean_abs_diff(tense, calm) > 4


@pytest.mark.gl
@pytest.mark.parametrize("name", RELAXATION)
def test_the_world_pacer_moves_with_breath_phase(name, render):
    """The in-world pacer (surf, seeds) follows SceneState.breath_phase; the renderer's own orb is masked out."""
    size = (160, 180)

    def shot(phase, pacer):
        return render(SceneState(environment=name, level=1, breath_phase=phase, dials=(("pacer", pacer),)),
                      size=size)[0]

    orb = _mask(shot(0.0, 0.0), shot(0.4, 0.0), 30)  # with the world pacer off only the renderer's orb changes
    world = _mask(shot(0.0, 1.0), shot(0.4, 1.0), 30) & ~orb
    assert world.sum() > 150, world.sum()
    # A phase that is the same point of the cycle shows the same pacer; another phase shows it elsewhere.
    same = _mask(shot(0.4, 1.0), shot(1.4, 1.0), 30)
    assert same.sum() == 0
    exhale = _mask(shot(0.4, 1.0), shot(0.7, 1.0), 30) & ~_mask(shot(0.4, 0.0), shot(0.7, 0.0), 30)
    assert exhale.sum() > 50


@pytest.mark.gl
@pytest.mark.parametrize("name", RELAXATION)
def test_without_a_session_pacer_the_world_pacer_breathes_at_its_dial_rate(name, render, gl_ctx):
    """Gallery and preview: no breath_phase, the pacer cycles at breaths_per_min (one full cycle = the same pacer)."""
    from environments.renderer import HeadPose, Renderer

    size = (96, 108)
    r = Renderer(gl_ctx, size)
    try:
        def at(t, pacer):
            r.set_state(SceneState(environment=name, level=2, dials=(("breaths_per_min", 5.0), ("pacer", pacer))))
            r.settle()
            r.render(HeadPose.default(size), t)
            return r.read_rgb(0)

        period = 60.0 / 5.0
        t0, t_half = 30.0, 30.0 + 0.4 * period  # empty lungs, then full
        moved_on = _mask(at(t0, 1.0), at(t_half, 1.0), 30).sum()
        moved_off = _mask(at(t0, 0.0), at(t_half, 0.0), 30).sum()  # the ambient motion alone
        assert moved_on > moved_off + 30, (moved_on, moved_off)
    finally:
        r.release()


@pytest.mark.parametrize(("env", "orb"), [("beach", False), ("forest", False), ("safe_place", True)])
def test_one_pacer_only_a_scene_with_its_own_shows_no_orb(gl_ctx, env, orb):
    """The beach's surf and the forest's seeds are the pacer: the renderer adds its glowing orb only where a scene
    has no pacer of its own (the patient never sees two lights to breathe with)."""
    from environments import registry
    from environments.renderer import Renderer

    r = Renderer(gl_ctx, (64, 64), msaa=0, stereo=False)
    try:
        r.set_state(SceneState(environment=env, level=0, breath_phase=0.25))
        r.settle()
        built = registry.build_from_values(env, registry.get(env).level_values(0)).instance_count
        assert r.instances == built + (1 if orb else 0)
    finally:
        r.release()
