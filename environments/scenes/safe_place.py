"""``safe_place``: a quiet lakeside meadow in warm evening light, where the patient can always return.

No stressors, nothing moves fast, soft light and wide horizon. A breathing
pacer (a softly glowing sphere that grows on the in-breath and shrinks on the
out-breath) floats ahead when ``SceneState.breath_phase`` is set; the renderer
adds it to every environment, so paced breathing also works during exposure.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from environments.environment import Dial, Environment, Level
from environments.scene_build import GRASS, WATER, WOOD, InstanceSet, SceneBuild, SceneLook

LOOK = SceneLook(
    sun_dir=(-0.5, 0.35, -0.75),
    sun_rgb=(1.15, 0.9, 0.65),
    sky_zenith_rgb=(0.32, 0.45, 0.75),
    sky_horizon_rgb=(0.95, 0.78, 0.6),
    ground_ambient_rgb=(0.22, 0.24, 0.16),
    fog_rgb=(0.9, 0.78, 0.66),
    fog_density=0.004,
)


@functools.lru_cache(maxsize=1)
def _meadow() -> InstanceSet:
    rng = np.random.default_rng(2)
    s = InstanceSet()
    s.add("cube", (0, -0.5, 0), (2000, 1.0, 2000), (0.32, 0.45, 0.18), pattern=GRASS)
    # The lake ahead, with its far shore and distant hills.
    s.add("cube", (0, 0.02, -60), (140, 0.04, 80), (0.1, 0.25, 0.4), pattern=WATER)
    hx = np.linspace(-400, 400, 9) + rng.uniform(-30, 30, 9)
    hs = rng.uniform(120, 260, 9)
    s.add("sphere", np.stack([hx, np.zeros(9), np.full(9, -320.0) + rng.uniform(-60, 60, 9)], 1),
          np.stack([hs * 2, hs * 0.45, hs], 1), (0.3, 0.4, 0.3), pattern=GRASS)
    # Trees around the meadow, well away from the patient.
    ang = rng.uniform(-np.pi / 2 + 0.9, 3 * np.pi / 2 - 0.9, 36)  # never straight ahead (the lake)
    r = rng.uniform(14, 45, 36)
    tx, tz = np.cos(ang) * r, np.sin(ang) * r * 0.8 + 10
    th = rng.uniform(6, 11, 36)
    s.add("cylinder", np.stack([tx, th / 4, tz], 1), np.stack([np.full(36, 0.4), th / 2, np.full(36, 0.4)], 1),
          (0.32, 0.24, 0.16))
    s.add("cone", np.stack([tx, th * 0.62, tz], 1), np.stack([th * 0.45, th * 0.8, th * 0.45], 1),
          (0.12, 0.27, 0.12), pattern=GRASS, motion=np.stack([np.zeros(36)] * 2 + [rng.uniform(0, 6, 36), np.full(36, 0.15)], 1))
    # A wooden jetty reaching into the lake, and a few stones.
    s.add("cube", (0, 0.15, -22), (2.2, 0.12, 6), (0.5, 0.36, 0.22), pattern=WOOD)
    s.add("cylinder", [(-1, -0.2, -19.2), (1, -0.2, -19.2), (-1, -0.2, -24.8), (1, -0.2, -24.8)], (0.2, 0.9, 0.2),
          (0.35, 0.25, 0.16))
    sx = rng.uniform(-12, 12, 10)
    sz = rng.uniform(-19, -4, 10)
    s.add("sphere", np.stack([sx, np.zeros(10), sz], 1), rng.uniform(0.3, 0.9, (10, 3)), (0.5, 0.5, 0.48))
    # Flowers: small bright dots in the grass.
    fx = rng.uniform(-15, 15, 120)
    fz = rng.uniform(-18, 8, 120)
    s.add("sphere", np.stack([fx, np.full(120, 0.12), fz], 1), (0.12, 0.12, 0.12),
          rng.choice([0, 1, 2], 120)[:, None] * np.array([[0.0, 0.0, 0.0]]) + np.array([[0.95, 0.85, 0.3]]) * rng.uniform(0.7, 1.0, (120, 1)),
          motion=np.stack([np.zeros(120)] * 2 + [rng.uniform(0, 6, 120), np.full(120, 0.3)], 1))
    return s


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The meadow; ``light`` dims the evening light for a quieter feel."""
    s = InstanceSet()
    s.include(_meadow())
    light = float(np.clip(d["light"], 0.2, 1.5))
    look = SceneLook(
        sun_dir=LOOK.sun_dir,
        sun_rgb=tuple(c * light for c in LOOK.sun_rgb),
        sky_zenith_rgb=LOOK.sky_zenith_rgb,
        sky_horizon_rgb=LOOK.sky_horizon_rgb,
        ground_ambient_rgb=LOOK.ground_ambient_rgb,
        fog_rgb=LOOK.fog_rgb,
        fog_density=LOOK.fog_density,
    )
    return s.build(look, (0.0, 0.0, -8.0), gaze_pitch_rad=-0.08, wind=0.2,
                   shadow_center=(0.0, 0.0, -10.0), shadow_radius_m=45.0)


class SafePlace(Environment):
    """Where the patient can always return: nothing moves fast, nothing frightens."""

    name = "safe_place"
    title = "Safe place: lakeside meadow"
    kind = "safe"
    targets = ("calm",)
    dials = (Dial("light", "", 0.2, 1.5, 1.0, False, "brightness of the evening sun (lower is quieter)"),)
    levels = (
        Level("Lakeside meadow", "A calm meadow by a still lake at golden hour, trees around, a wooden jetty; "
              "a breathing pacer floats ahead when paced breathing is on.", {"light": 1.0}),
    )

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = SafePlace()
