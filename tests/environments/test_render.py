"""Headless rendering through the real moderngl/EGL path at small sizes (<= 256 x 256 per eye)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from environments.scene_state import SceneState
from tests.environments.conftest import mean_abs_diff

pytestmark = pytest.mark.gl
DATA = Path(__file__).parent / "data"


def _pacer_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the self-lit pale-blue breathing pacer (nothing else in the safe place is that colour)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (b > 245) & (g > 205) & (r < b - 15)


def test_frames_are_not_blank_and_change_with_the_level(render):
    imgs = [render(SceneState(environment="heights", level=lv), size=(96, 96))[0] for lv in (0, 4, 8, 12)]
    for img in imgs:
        assert img.std() > 20  # structure, not a clear colour
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    for a, b in zip(imgs, imgs[1:]):
        assert mean_abs_diff(a, b) > 8  # each step looks clearly different


def test_same_state_renders_the_same_image(render):
    a = render(SceneState(environment="heights", level=6), size=(64, 64))[0]
    b = render(SceneState(environment="heights", level=6), size=(64, 64))[0]
    assert np.array_equal(a, b)


def test_matches_the_small_golden_image_within_tolerance(render):
    """Regression against a committed 64x64 frame; Mesa versions may differ by a few LSB on a few pixels."""
    img = render(SceneState(environment="heights", level=6), size=(64, 64))[0]
    golden = np.asarray(Image.open(DATA / "heights_6_64.png").convert("RGB"))
    diff = np.abs(img.astype(int) - golden.astype(int))
    assert np.mean(diff > 3) < 0.01
    assert diff.mean() < 1.0


def test_eyes_differ_by_the_expected_disparity(render):
    """The pacer 2.5 m ahead shifts by f_px * ipd / depth between the eyes, and only horizontally."""
    from environments import registry
    from environments.renderer import PACER_DISTANCE_M

    size = (256, 256)
    left, right = render(SceneState(environment="safe_place", level=0, breath_phase=0.4), size=size)
    ml, mr = _pacer_mask(left), _pacer_mask(right)
    assert ml.sum() > 50 and mr.sum() > 50
    xl, yl = np.nonzero(ml)[1].mean(), np.nonzero(ml)[0].mean()
    xr, yr = np.nonzero(mr)[1].mean(), np.nonzero(mr)[0].mean()
    fx = (size[0] / 2) / math.tan(math.radians(100.0) / 2)  # HeadPose.default: 100 deg vertical, square eye
    pitch = registry.build("safe_place", 0).gaze_pitch_rad
    depth = PACER_DISTANCE_M * math.cos(pitch) + 0.05 * math.sin(-pitch)
    expected = fx * 0.064 / depth
    assert xl - xr == pytest.approx(expected, abs=0.3)
    assert yl == pytest.approx(yr, abs=0.05)


def test_breathing_pacer_follows_breath_phase(render):
    sizes = {}
    for ph in (None, 0.0, 0.4, 0.7):
        left, _ = render(SceneState(environment="safe_place", level=0, breath_phase=ph), size=(128, 128))
        sizes[ph] = int(_pacer_mask(left).sum())
    assert sizes[None] == 0
    assert 0 < sizes[0.0] < sizes[0.7] < sizes[0.4]  # empty lungs < half way out < full


def test_fade_to_black_and_half_fade_to_white(render):
    base, _ = render(SceneState(environment="heights", level=3), size=(64, 64))
    black, _ = render(SceneState(environment="heights", level=3, fade=1.0), size=(64, 64))
    assert black.max() <= 1
    half, _ = render(SceneState(environment="heights", level=3, fade=0.5, fade_rgb=(1.0, 1.0, 1.0)), size=(64, 64))
    expected = base.astype(float) * 0.5 + 255 * 0.5
    assert np.abs(half.astype(float) - expected).max() <= 2.0


def test_panel_shows_text_and_the_suds_scale(render):
    plain, _ = render(SceneState(environment="safe_place", level=0), size=(192, 192))
    text, _ = render(SceneState(environment="safe_place", level=0, panel_text="Well done. Take a breath."), size=(192, 192))
    suds, _ = render(SceneState(environment="safe_place", level=0, suds_prompt=True), size=(384, 384))
    changed = np.abs(text.astype(int) - plain.astype(int)).sum(axis=2) > 30
    assert changed.mean() > 0.02  # a panel appeared
    ys, xs = np.nonzero(changed)
    assert abs(xs.mean() - 96) < 12  # centred ahead of the patient
    assert ys.mean() > 96  # below eye level
    # The SUDS scale adds the green-to-red bar: strongly red and strongly green pixels inside the panel
    # (a few dozen at 384 px; at 192 px the thin bar is filtered into a handful).
    r, g = suds[..., 0].astype(int), suds[..., 1].astype(int)
    assert ((r > 180) & (g < 120)).sum() > 15 and ((g > 150) & (r < 130)).sum() > 15


def test_glass_is_drawn_back_to_front(gl_ctx, render):
    """The glass instance buffer on the GPU is ordered by decreasing distance from the eye."""
    from environments.renderer import HeadPose, Renderer
    from environments.scene_build import INSTANCE_FLOATS

    r = Renderer(gl_ctx, (64, 64))
    try:
        r.set_state(SceneState(environment="heights", level=11))
        pose = HeadPose.default((64, 64))
        for x in (0.0, 3.0, -3.0):  # move the head sideways: the order must follow
            pose.tracking_from_head[0, 3] = x
            r.render(pose, 0.0)
            n = r._glass_count
            assert n >= 3
            rows = np.frombuffer(r._inst_bufs["glass"].read(), np.float32)[: n * INSTANCE_FLOATS].reshape(n, -1)
            cam = r._eyes[0].cam[:3]
            d = np.linalg.norm(rows[:, 0:3] - cam, axis=1)
            assert np.all(np.diff(d) <= 1e-4), d
    finally:
        r.release()


def test_switching_environment_at_any_frame(gl_ctx, render):
    from environments.renderer import Renderer

    r = Renderer(gl_ctx, (64, 64))
    try:
        first, _ = render(SceneState(environment="heights", level=9), renderer=r)
        safe, _ = render(SceneState(environment="heights", level=9, safe_place=True), renderer=r)
        assert r.environment == "safe_place"
        again, _ = render(SceneState(environment="heights", level=9), renderer=r)
        assert not np.array_equal(first, safe)
        assert np.array_equal(first, again)
    finally:
        r.release()


def test_msaa_renders_and_resolves(render):
    img, _ = render(SceneState(environment="heights", level=5), size=(64, 64), msaa=4)
    ref, _ = render(SceneState(environment="heights", level=5), size=(64, 64), msaa=0)
    assert np.abs(img.astype(int) - ref.astype(int)).mean() < 12  # same picture, smoother edges
    assert not np.array_equal(img, ref)


def test_draw_calls_stay_within_budget(gl_ctx):
    from environments import registry
    from environments.renderer import HeadPose, Renderer

    r = Renderer(gl_ctx, (32, 32))
    try:
        for name in registry.names():
            info = registry.info(name)
            for lv in (0, info.max_level):
                r.set_state(SceneState(environment=name, level=lv, panel_text="x", fade=0.2, breath_phase=0.1))
                r.settle()
                r.render(HeadPose.default((32, 32)), 0.0)
                assert r.draw_calls_per_eye <= 40
    finally:
        r.release()


def test_no_growth_of_python_or_gl_objects_in_steady_state(gl_ctx):
    """1,000 frames at 32x32 (the benchmark's --leak-frames runs 10,000): nothing accumulates."""
    from bench.render import leak_check

    result = leak_check(gl_ctx, "heights", 12, 1000)
    assert result["gl_objects_growth"] == 0
    assert result["python_objects_growth"] <= 0
    assert result["python_bytes_growth"] < 2048
