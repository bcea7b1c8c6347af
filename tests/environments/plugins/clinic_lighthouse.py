"""A clinic's own environments, written outside vrex: found through the ``vrex.environments`` entry points.

Not imported by vrex or by the test suite directly: ``test_environments`` puts
this folder and a ``*.dist-info`` declaring the entry points on ``sys.path``,
as ``pip install`` of the clinic's package would, and checks that the registry,
``envs list`` and the renderer pick both environments up.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from environments.environment import ENV_MATERIAL_BASE, Dial, Environment, EnvironmentShader, Level
from environments.scene_build import GRASS, WATER, InstanceSet, SceneBuild, SceneLook

STRIPES = ENV_MATERIAL_BASE  # this environment's own material: red and white bands every 3 m


class Lighthouse(Environment):
    """Standing on the rocks below a lighthouse that grows taller level by level."""

    name = "lighthouse"
    title = "Heights: lighthouse on the rocks"
    kind = "phobia"
    targets = ("acrophobia",)
    dials = (
        Dial("height_m", "m", 5.0, 60.0, 10.0, True, "height of the lighthouse in front of the patient"),
        Dial("distance_m", "m", 3.0, 20.0, 12.0, True, "distance from the patient to its foot",
             fear_rises_with_value=False),
    )
    levels = tuple(
        Level(f"Lighthouse {h:.0f} m", f"A striped lighthouse {h:.0f} m tall stands {d:.0f} m in front of you "
              "on the rocks by the sea.", {"height_m": h, "distance_m": d})
        for h, d in zip(np.linspace(8.0, 60.0, 10), np.linspace(16.0, 4.0, 10))
    )
    shader = EnvironmentShader(fragment=f"""
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {{
    if (pattern != {STRIPES:.1f}) return false;
    base = mod(floor(world.y / 3.0), 2.0) < 1.0 ? vec3(0.85, 0.05, 0.04) : vec3(0.95, 0.95, 0.92);
    return true;
}}
""")

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        s = InstanceSet()
        s.add("cube", (0, -0.5, 0), (400, 1.0, 400), (0.1, 0.25, 0.4), pattern=WATER)
        s.add("sphere", (0, 0, -dials["distance_m"]), (14, 3, 14), (0.4, 0.38, 0.35))
        h = dials["height_m"]
        s.add("cylinder", (0, h / 2, -dials["distance_m"]), (3.0, h, 3.0), (1, 1, 1), pattern=STRIPES)
        pitch = float(np.arctan2(h * 0.6 - 1.65, dials["distance_m"]))
        return s.build(SceneLook(), (0.0, 0.0, 0.0), gaze_pitch_rad=pitch)


class Garden(Environment):
    """The clinic's own safe place: a walled green garden."""

    name = "clinic_garden"
    title = "Safe place: the clinic's garden"
    kind = "safe"
    targets = ("calm",)
    dials = (Dial("light", "", 0.5, 1.5, 1.0, False, "brightness of the sun"),)
    levels = (Level("Garden", "A quiet walled garden with a lawn and low hedges, nothing moving.", {"light": 1.0}),)

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        s = InstanceSet()
        s.add("cube", (0, -0.5, 0), (200, 1.0, 200), (0.2, 0.6, 0.15), pattern=GRASS)
        s.add("cube", [(0, 1, -12), (-12, 1, 0), (12, 1, 0)], [(24, 2, 0.5), (0.5, 2, 24), (0.5, 2, 24)],
              (0.6, 0.55, 0.5))
        return s.build(SceneLook(), (0.0, 0.0, 0.0), gaze_pitch_rad=-0.2)


ENVIRONMENT = Lighthouse()
GARDEN = Garden()
