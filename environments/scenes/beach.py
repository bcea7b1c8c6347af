"""``beach``: a quiet sandy beach at sunset, for paced breathing and heart-rate-variability biofeedback.

Slow ambient motion only: long low swells roll in towards the shore, palms sway
in a light breeze, a sailboat bobs far out. The **breathing pacer is the surf**:
the wash of each wave slides up the sand towards the patient on the in-breath
and draws back on the out-breath, following ``SceneState.breath_phase`` (whose
rate the session sets, e.g. the patient's resonance rate); without a session
pacer it follows the ``breaths_per_min`` dial, so the gallery and previews show
it breathing. (When the session shows its pacer, the renderer's own glowing
sphere floats over the water in step with the surf.)

``calm_response`` (0..1) is driven by the session from biofeedback (the
breathing-related heart-rate oscillation): as it grows the haze over the sea
lifts, the light warms to gold and the sea stills (lower, slower swells, a
calmer breeze). Everything moves on the GPU; nothing is walked per frame.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np

from environments.environment import (
    ENV_MATERIAL_BASE,
    Dial,
    Environment,
    EnvironmentShader,
    Level,
)
from environments.scene_build import InstanceSet, SceneBuild, SceneLook

SAND = ENV_MATERIAL_BASE  # fine grain, wet and darker near the water
SEA = ENV_MATERIAL_BASE + 1  # the open sea; the fraction of the id carries how still it is (calm_response)
FOAM = ENV_MATERIAL_BASE + 2  # the wash and the swells' crests
FROND = ENV_MATERIAL_BASE + 3  # palm leaves

# Part codes in anim.x for the vertex shader.
SWELL, WASH = 1.0, 2.0

SHORE_Z_M = -7.0  # where the still water meets the sand
WASH_REACH_M = 2.6  # how far up the sand the wash slides on a full in-breath
SWELL_SPACING_M = 9.0
SWELL_ROWS = 7
VIEW_FOVY_DEG = 62.0  # the default view: the surf at the bottom, the sun over the sea, palms at the sides

DIALS = (
    Dial("breaths_per_min", "breaths/min", 4.0, 7.0, 6.0, False, "rate of the surf pacer when the session sets "
         "none (gallery, preview); in a session the pacer follows the session's breathing rate"),
    Dial("calm_response", "", 0.0, 1.0, 0.0, False, "driven by biofeedback: as it grows the haze lifts, the light "
         "warms and the sea stills"),
    Dial("sun_height_deg", "deg", 0.5, 15.0, 6.0, False, "how high the sun stands over the sea (lower is later "
         "and redder)"),
    Dial("breeze", "", 0.0, 1.0, 0.3, False, "wind: how much the palms sway and how high the swells run"),
    Dial("pacer", "", 0.0, 1.0, 1.0, False, "1 the surf breathes with the pacer, 0 the surf is still (no pacer "
         "in the world)"),
)

LEVELS = (
    Level("Golden hour", "The sun stands a hand's width over the sea; a light breeze moves the palms, low swells "
          "roll in and the surf slides up the sand with each in-breath.", {"sun_height_deg": 12.0, "breeze": 0.4}),
    Level("Sunset", "The sun touches the horizon, the sky glows orange and pink; the surf breathes with you.",
          {"sun_height_deg": 4.0, "breeze": 0.25}),
    Level("Afterglow", "The sun has just set behind the sea, the sky is rose and violet, the sea is almost still "
          "and the breeze has dropped.", {"sun_height_deg": 0.5, "breeze": 0.1}),
)

SHADER = EnvironmentShader(
    vertex=f"""
float beach_breath(float bpm, float t) {{
    float ph = u_sun_rgb.w;  // the session's pacer phase, < 0 when it shows none
    if (ph < 0.0) ph = fract(t * bpm / 60.0);
    return breath_curve(ph);  // 0 empty lungs .. 1 full
}}

void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {{
    // anim = (code, swell height m / wash on, speed m/s / breaths per min, phase 0..1)
    if (anim.x == {SWELL:.1f}) {{
        // A long low swell rolling in: rises out of the sea, travels {SWELL_SPACING_M:.0f} m towards the shore and
        // flattens as the next one follows (no pop: its height is zero where it wraps).
        float f = fract(t * anim.z / {SWELL_SPACING_M:.1f} + anim.w);
        p.z += f * {SWELL_SPACING_M:.1f};
        float rise = sin(3.14159265 * f);
        p.y = p.y * rise * anim.y / 0.3;
        n = normalize(vec3(n.x, n.y, n.z * max(rise, 0.05)));
    }} else if (anim.x == {WASH:.1f} && anim.y > 0.5) {{
        // The wash slides up the sand on the in-breath and draws back on the out-breath.
        p.z += {WASH_REACH_M:.2f} * beach_breath(anim.z, t);
    }}
}}
""",
    fragment=f"""
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {{
    if (pattern == {SAND:.1f}) {{
        float grain = hash(floor(world.xz * 90.0));
        base *= 0.9 + 0.14 * grain + 0.05 * hash(floor(world.xz * 4.0));
        float wet = smoothstep({SHORE_Z_M + WASH_REACH_M + 1.2:.2f}, {SHORE_Z_M:.2f}, world.z);
        base *= 1.0 - 0.35 * wet;
        spec_k = 0.04 + 0.4 * wet;
        shininess = 40.0;
        return true;
    }}
    if (floor(pattern + 0.001) == {SEA:.1f}) {{
        // Wave glints scattered over the sea and gathered along the sun's path; fewer as the sea stills.
        float still = fract(pattern + 0.001) / 0.9;
        float t = u_cam.w;
        float dist = max(length(world.xz - u_cam.xz), 1.0);
        float ripple = sin(world.x * 0.9 + t * 0.6) * sin(world.z * 0.7 - t * (1.1 - 0.6 * still))
                     + 0.5 * sin(world.x * 2.3 - t * 0.9 + world.z * 1.7);
        float sunpath = exp(-pow((world.x - u_cam.x) / (0.08 * dist + 1.0), 2.0));
        float glint = smoothstep(0.8 + 0.5 * still, 1.5, ripple + 0.3 * hash(floor(world.xz * 2.0)));
        vec3 sky = mix(u_zenith.rgb, u_horizon.rgb, 0.35 + 0.5 * smoothstep(10.0, 300.0, dist));
        base = mix(base, sky, 0.55);
        base += u_sun_rgb.rgb * glint * (0.08 + 0.9 * sunpath) * (1.0 - 0.6 * still);
        base *= 0.92 + 0.08 * ripple * (1.0 - still);
        spec_k = 0.6;
        shininess = 90.0;
        return true;
    }}
    if (pattern == {FOAM:.1f}) {{
        base *= 0.85 + 0.2 * hash(floor(world.xz * 25.0));
        spec_k = 0.2;
        return true;
    }}
    if (pattern == {FROND:.1f}) {{
        base *= 0.75 + 0.35 * step(0.5, fract(local.x * 14.0));  // leaflets
        return true;
    }}
    return false;
}}
""",
)


@functools.lru_cache(maxsize=1)
def _shore() -> InstanceSet:
    """Sand, the sea, headlands, palms, rocks and driftwood (seeded: the same beach every time)."""
    rng = np.random.default_rng(31)
    s = InstanceSet()
    s.add("cube", (0, -0.5, 200 + SHORE_Z_M), (1200, 1.0, 400), (0.86, 0.72, 0.52), pattern=SAND)
    # Headlands to either side far out, and a distant island.
    s.add("sphere", [(-260, -20, -520), (330, -30, -600), (40, -6, -900)], [(420, 110, 260), (500, 140, 300),
                                                                        (160, 30, 80)], (0.25, 0.3, 0.22))
    # Palms on the left and right of the beach (trunks lean, fronds sway).
    for x, z, lean in ((-2.9, -6.0, -0.7), (-7.0, -4.0, -0.3), (3.2, -6.3, 0.8), (8.0, -2.0, 0.3)):
        h = 6.0 + 1.5 * rng.random()
        k = 6
        ys = np.linspace(0.0, h, k + 1)
        xs = x + lean * (ys / h) ** 2 * 2.0
        a = np.stack([xs[:-1], ys[:-1], np.full(k, z)], 1)
        b = np.stack([xs[1:], ys[1:], np.full(k, z)], 1)
        v = b - a
        length = np.linalg.norm(v, axis=1)
        d = v / length[:, None]
        axis = np.cross(np.broadcast_to([0.0, 1.0, 0.0], d.shape), d)
        q = np.concatenate([axis, (1.0 + d[:, 1])[:, None]], 1)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        s.add("cylinder", (a + b) / 2, np.stack([np.linspace(0.42, 0.3, k), length * 1.05, np.linspace(0.42, 0.3, k)], 1),
              (0.45, 0.36, 0.25), quat=q, motion=(0, 0, x, 0.02))
        top = b[-1]
        ang = np.linspace(0, 2 * np.pi, 9)[:-1] + rng.uniform(0, 0.4)
        fx, fz = np.cos(ang), np.sin(ang)
        # Each frond: a long flat leaf drooping outwards from the crown (yaw, then tilt down).
        yaw = np.arctan2(-fx, -fz)
        tilt = 0.35 + 0.25 * rng.random(8)
        cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
        ct, st = np.cos(-tilt / 2), np.sin(-tilt / 2)  # the outer end droops
        # q = yaw(about Y) * tilt(about X): the leaf's length is along -Z before rotation.
        qf = np.stack([cy * st, sy * ct, -sy * st, cy * ct], 1)
        centre = top + np.stack([fx, -np.sin(tilt) * 0.9, fz], 1) * np.array([[1.6, 1.0, 1.6]])
        s.add("sphere", centre, (0.7, 0.06, 3.4), (0.2, 0.36, 0.14), quat=qf, pattern=FROND,
              motion=np.stack([np.zeros(8), np.zeros(8), rng.uniform(0, 6, 8), np.full(8, 0.5)], 1))
        s.add("sphere", top, (0.5, 0.45, 0.5), (0.35, 0.3, 0.15))
    # Rocks at the water's edge on the right, driftwood on the left.
    rx = rng.uniform(3.0, 9.0, 7)
    rz = SHORE_Z_M + rng.uniform(-2.0, 1.5, 7)
    s.add("sphere", np.stack([rx, np.zeros(7), rz], 1), np.stack([rng.uniform(0.6, 1.6, 7), rng.uniform(0.4, 1.0, 7),
                                                                 rng.uniform(0.6, 1.4, 7)], 1), (0.32, 0.29, 0.26))
    # Shells and pebbles on the sand.
    px, pz = rng.uniform(-6, 6, 40), rng.uniform(SHORE_Z_M + 0.5, 2.0, 40)
    s.add("sphere", np.stack([px, np.zeros(40), pz], 1), rng.uniform(0.05, 0.14, (40, 1)) * np.array([[1.0, 0.5, 1.0]]),
          rng.uniform(0.7, 0.95, (40, 1)) * np.array([[1.0, 0.92, 0.85]]))
    return s


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The beach for one setting of the dials (calm_response warms, clears and stills it)."""
    calm = float(np.clip(d["calm_response"], 0.0, 1.0))
    breeze = float(np.clip(d["breeze"], 0.0, 1.0)) * (1.0 - 0.7 * calm)
    elev = math.radians(float(np.clip(d["sun_height_deg"], 0.5, 15.0)))
    low = 1.0 - min(elev / math.radians(15.0), 1.0)  # 1 at the horizon: redder
    s = InstanceSet()
    s.include(_shore())
    # The sea: still water beyond the shore; its id's fraction tells the shader how still it is.
    s.add("cube", (0, -0.02, SHORE_Z_M - 600), (1200, 0.04, 1200), (0.12, 0.3, 0.42), pattern=SEA + 0.9 * calm,
          emissive=0.15)
    # Swells rolling in (heights shrink and they slow down as calm grows; on the GPU).
    height = 0.05 + 0.3 * (0.3 + 0.7 * breeze)
    speed = 1.4 - 0.6 * calm
    rows = SWELL_ROWS
    z0 = SHORE_Z_M - 1.5 - SWELL_SPACING_M * np.arange(rows)
    s.add("sphere", np.stack([np.zeros(rows), np.zeros(rows), z0 - SWELL_SPACING_M], 1),
          np.stack([np.full(rows, 160.0), np.full(rows, 0.3), np.full(rows, 2.2)], 1), (0.12, 0.3, 0.42),
          pattern=SEA + 0.9 * calm, anim=np.stack([np.full(rows, SWELL), np.full(rows, height), np.full(rows, speed),
                                                   np.zeros(rows)], 1))
    # The surf pacer: a sheet of foamy wash and its bright leading edge, sliding up the sand with the breath.
    pace = float(np.clip(d["pacer"], 0.0, 1.0)) >= 0.5
    bpm = float(np.clip(d["breaths_per_min"], 4.0, 7.0))
    wash_anim = (WASH, 1.0 if pace else 0.0, bpm, 0.0)
    s.add("cube", (0, 0.012, SHORE_Z_M - 1.5), (60, 0.02, 3.0), (0.85, 0.9, 0.9), pattern=FOAM, anim=wash_anim,
          emissive=0.25, alpha=0.6)
    s.add("cylinder", (0, 0.03, SHORE_Z_M), (0.3, 60, 0.3), (1.0, 0.98, 0.94), pattern=FOAM, emissive=0.45,
          quat=(0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)), anim=wash_anim)
    # A sailboat far out, bobbing on the swell (a slow circle of a few metres).
    s.add("cube", (0, 0.6, 0), (1.2, 0.8, 5.0), (0.9, 0.88, 0.85), group=(60, 0, -180, 0.3), motion=(3.0, 0.02, 0, 0))
    s.add("cone", (0, 4.5, 0.3), (0.1, 7.0, 3.0), (0.96, 0.94, 0.9), group=(60, 0, -180, 0.3), motion=(3.0, 0.02, 0, 0))
    # Light: low sun ahead over the sea; calm lifts the haze and warms the light.
    warm = 0.5 * low + 0.5 * calm
    sun = np.array([1.2, 0.82 - 0.2 * low, 0.55 - 0.25 * low]) * (0.75 + 0.35 * calm)
    sun = sun * np.array([1.0 + 0.12 * calm, 1.0, 1.0 - 0.35 * calm])
    fog = np.array([0.8 + 0.08 * calm, 0.68, 0.66 - 0.12 * calm])
    haze = 0.55 * (1.0 - calm)  # a hazy sky is nearer the fog's colour; clear air shows the sky's own colours
    zenith = np.array([0.2 + 0.12 * warm, 0.22 + 0.02 * calm, 0.5 - 0.15 * low])
    horizon = np.array([0.95 + 0.1 * calm, 0.62 + 0.1 * (1 - low) - 0.05 * calm, 0.45 - 0.15 * warm])
    look = SceneLook(
        sun_dir=(0.0, math.sin(elev), -math.cos(elev)),
        sun_rgb=tuple(float(c) for c in sun),
        sky_zenith_rgb=tuple(float(c) for c in zenith + (fog - zenith) * haze),
        sky_horizon_rgb=tuple(float(c) for c in horizon + (fog - horizon) * haze * 0.5),
        ground_ambient_rgb=(0.33 + 0.06 * calm, 0.27 + 0.02 * calm, 0.24 - 0.04 * calm),
        fog_rgb=tuple(float(c) for c in fog),
        fog_density=0.03 * (1.0 - calm) ** 1.5 + 0.001,
    )
    return s.build(look, (0.0, 0.0, 0.0), gaze_pitch_rad=-0.1, view_fovy_deg=VIEW_FOVY_DEG, wind=breeze,
                   shadow_center=(0.0, 0.0, -4.0), shadow_radius_m=16.0,
                   own_pacer=bool(pace))  # the surf is the pacer: no separate orb


class Beach(Environment):
    """A sandy beach at sunset: the surf breathes with the pacer, calm clears the haze and stills the sea."""

    name = "beach"
    title = "Relaxation: beach at sunset"
    kind = "relaxation"
    targets = ("relaxation", "paced breathing", "HRV biofeedback")
    dials = DIALS
    levels = LEVELS
    shader = SHADER

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = Beach()
