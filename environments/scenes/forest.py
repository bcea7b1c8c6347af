"""``forest``: a sunny clearing in a mixed forest, for paced breathing and heart-rate-variability biofeedback.

Slow ambient motion only: the crowns sway in a light breeze, ferns nod, a
small pond ripples. The **breathing pacer is a swarm of glowing seeds**
floating over a mossy stump in the clearing: it rises and spreads on the
in-breath and settles and gathers on the out-breath, following
``SceneState.breath_phase`` (whose rate the session sets); without a session
pacer it follows the ``breaths_per_min`` dial, so the gallery and previews show
it breathing.

``calm_response`` (0..1) is driven by the session from biofeedback: as it
grows the morning mist lifts, the light warms and shafts of sun reach into the
clearing, the breeze settles and the pond stills. Everything moves on the GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from environments.environment import (
    ENV_MATERIAL_BASE,
    Dial,
    Environment,
    EnvironmentShader,
    Level,
)
from environments.scene_build import (
    GRASS,
    InstanceSet,
    SceneBuild,
    SceneLook,
    axis_quat,
)

MOSS = ENV_MATERIAL_BASE  # soft mottled green
BARK = ENV_MATERIAL_BASE + 1  # vertical furrows
POND = ENV_MATERIAL_BASE + 2  # the fraction of the id carries how still it is (calm_response)
SEED = ENV_MATERIAL_BASE + 3  # the pacer's glowing seeds

SEED_CODE = 1.0  # anim.x of a pacer seed
STUMP_XZ = (0.6, -4.0)
SEED_COUNT = 36
SHAFT_TILT = tuple(float(v) for v in axis_quat((1.0, 0.0, 0.4), 0.35))  # sun shafts lean away from the sun

DIALS = (
    Dial("breaths_per_min", "breaths/min", 4.0, 7.0, 6.0, False, "rate of the seed pacer when the session sets "
         "none (gallery, preview); in a session the pacer follows the session's breathing rate"),
    Dial("calm_response", "", 0.0, 1.0, 0.0, False, "driven by biofeedback: as it grows the mist lifts, the light "
         "warms and the pond stills"),
    Dial("mist", "", 0.0, 1.0, 0.6, False, "morning mist at the start (calm_response lifts it)"),
    Dial("breeze", "", 0.0, 1.0, 0.3, False, "wind in the crowns and ferns"),
    Dial("pacer", "", 0.0, 1.0, 1.0, False, "1 the glowing seeds breathe with the pacer, 0 they rest on the stump"),
)

LEVELS = (
    Level("Misty morning", "Early light in a quiet clearing, mist between the trees; glowing seeds over a mossy "
          "stump rise and settle with your breath.", {"mist": 0.9, "breeze": 0.2}),
    Level("Sunny clearing", "Sun on the grass, a light breeze in the crowns, the pond reflects the sky; the seeds "
          "breathe with you.", {"mist": 0.5, "breeze": 0.35}),
    Level("Clear midday calm", "The air is clear and still, warm light fills the clearing and the pond is "
          "smooth.", {"mist": 0.15, "breeze": 0.1}),
)

SHADER = EnvironmentShader(
    vertex=f"""
float forest_breath(float bpm, float t) {{
    float ph = u_sun_rgb.w;  // the session's pacer phase, < 0 when it shows none
    if (ph < 0.0) ph = fract(t * bpm / 60.0);
    return breath_curve(ph);  // 0 empty lungs .. 1 full
}}

void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {{
    // anim = (code, breaths per min, pacer on, seed's own phase)
    if (anim.x == {SEED_CODE:.1f}) {{
        // The group's origin is the stump top: the swarm spreads and rises on the in-breath, gathers on the out.
        float b = anim.z > 0.5 ? forest_breath(anim.y, t) : 0.0;
        vec3 home = p;
        p = vec3(home.x * (0.45 + 0.9 * b), 0.08 + home.y * (0.25 + 0.9 * b) + 0.9 * b, home.z * (0.45 + 0.9 * b));
        p += 0.04 * vec3(sin(t * 0.7 + anim.w * 6.0), sin(t * 0.9 + anim.w * 11.0), cos(t * 0.6 + anim.w * 7.0));
    }}
}}
""",
    fragment=f"""
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {{
    if (pattern == {MOSS:.1f}) {{
        base *= 0.8 + 0.35 * hash(floor(world.xz * 30.0 + world.y * 17.0));
        return true;
    }}
    if (pattern == {BARK:.1f}) {{
        float a = atan(local.z, local.x);
        base *= 0.75 + 0.3 * step(0.5, fract(a * 3.0 + 0.3 * hash(floor(vec2(a * 9.0, local.y * 6.0)))));
        return true;
    }}
    if (floor(pattern + 0.001) == {POND:.1f}) {{
        float still = fract(pattern + 0.001) / 0.9;
        float t = u_cam.w;
        float r = length(world.xz - vec2({STUMP_XZ[0] - 3.2}, {STUMP_XZ[1] - 1.5}));
        float ripple = sin(r * 9.0 - t * 1.6) * (1.0 - still) + 0.4 * sin(world.x * 5.0 + t) * sin(world.z * 4.0 - t * 0.7) * (1.0 - still);
        vec3 v = normalize(u_cam.xyz - world);
        float fres = pow(1.0 - max(v.y, 0.0), 3.0);
        base = mix(base, mix(u_horizon.rgb, u_zenith.rgb, 0.5), 0.35 + 0.5 * fres) * (0.9 + 0.12 * ripple);
        spec_k = 0.8;
        shininess = 150.0;
        return true;
    }}
    if (pattern == {SEED:.1f}) {{
        return true;
    }}
    return false;
}}
""",
)


@functools.lru_cache(maxsize=1)
def _clearing() -> InstanceSet:
    """Ground, a ring of conifers and broadleaf trees, ferns, rocks, a pond and the stump (seeded)."""
    rng = np.random.default_rng(41)
    s = InstanceSet()
    s.add("cube", (0, -0.5, 0), (800, 1.0, 800), (0.28, 0.42, 0.16), pattern=GRASS)
    # Trees in rings around the clearing (radius 9..40 m around its centre), denser further out.
    cx, cz = 0.0, -7.0
    n = 140
    ang = rng.uniform(0, 2 * np.pi, n)
    r = 9.0 + rng.gamma(2.0, 6.0, n)
    tx, tz = cx + np.cos(ang) * r, cz + np.sin(ang) * r
    keep = np.hypot(tx, tz) > 5.0  # never on top of the patient
    tx, tz = tx[keep], tz[keep]
    n = len(tx)
    th = rng.uniform(9, 17, n)
    conifer = rng.random(n) < 0.55
    sway = np.stack([np.zeros(n), np.zeros(n), rng.uniform(0, 6, n), np.full(n, 0.25)], 1)
    s.add("cylinder", np.stack([tx, th * 0.35, tz], 1), np.stack([np.full(n, 0.5), th * 0.7, np.full(n, 0.5)], 1),
          (0.36, 0.27, 0.2), pattern=BARK)
    c = conifer
    s.add("cone", np.stack([tx[c], th[c] * 0.62, tz[c]], 1), np.stack([th[c] * 0.38, th[c] * 0.8, th[c] * 0.38], 1),
          (0.1, 0.25, 0.12), pattern=GRASS, motion=sway[c])
    b = ~conifer
    s.add("sphere", np.stack([tx[b], th[b] * 0.75, tz[b]], 1), np.stack([th[b] * 0.55, th[b] * 0.45, th[b] * 0.55], 1),
          (0.2, 0.38, 0.12), pattern=GRASS, motion=sway[b])
    # Ferns and bushes at the edge of the clearing, nodding in the breeze.
    m = 60
    fa = rng.uniform(0, 2 * np.pi, m)
    fr = rng.uniform(5.0, 9.0, m)
    fx, fz = cx + np.cos(fa) * fr, cz + np.sin(fa) * fr
    keep = np.hypot(fx, fz) > 3.0
    fx, fz = fx[keep], fz[keep]
    m = len(fx)
    s.add("cone", np.stack([fx, np.full(m, 0.35), fz], 1), rng.uniform(0.7, 1.4, (m, 1)) * np.array([[1.0, 0.7, 1.0]]),
          (0.22, 0.45, 0.15), pattern=GRASS, motion=np.stack([np.zeros(m), np.zeros(m), rng.uniform(0, 6, m),
                                                            np.full(m, 0.8)], 1))
    # Mossy rocks and the pond on the left.
    s.add("sphere", [(-2.5, 0.1, -8.5), (3.5, 0.15, -10.0), (-4.2, 0.05, -3.8)],
          [(1.3, 0.8, 1.0), (1.8, 1.0, 1.4), (0.9, 0.5, 0.8)], (0.4, 0.45, 0.35), pattern=MOSS)
    px, pz = STUMP_XZ[0] - 3.2, STUMP_XZ[1] - 1.5
    s.add("cylinder", (px, -0.02, pz), (3.6, 0.06, 2.6), (0.5, 0.42, 0.3))  # muddy rim
    # The mossy stump the pacer floats over.
    sx, sz = STUMP_XZ
    s.add("cylinder", (sx, 0.25, sz), (0.7, 0.5, 0.7), (0.42, 0.32, 0.22), pattern=BARK)
    s.add("cylinder", (sx, 0.505, sz), (0.66, 0.02, 0.66), (0.7, 0.58, 0.4))  # the cut face
    s.add("sphere", (sx - 0.2, 0.45, sz + 0.25), (0.5, 0.25, 0.4), (0.3, 0.45, 0.18), pattern=MOSS)
    # Wild flowers in the grass.
    k = 90
    wx, wz = rng.uniform(-5, 6, k), rng.uniform(-9, -1.5, k)
    s.add("sphere", np.stack([wx, np.full(k, 0.1), wz], 1), (0.09, 0.09, 0.09),
          np.array([[0.95, 0.9, 0.4], [0.9, 0.5, 0.7], [0.95, 0.95, 0.95]])[rng.integers(0, 3, k)],
          motion=np.stack([np.zeros(k), np.zeros(k), rng.uniform(0, 6, k), np.full(k, 0.5)], 1))
    return s


@functools.lru_cache(maxsize=1)
def _seed_homes() -> tuple[np.ndarray, np.ndarray]:
    """Where each glowing seed rests in the swarm (a soft ball around the stump's axis) and its own phase."""
    rng = np.random.default_rng(5)
    v = rng.normal(size=(SEED_COUNT, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = rng.uniform(0.25, 1.0, SEED_COUNT) ** 0.5
    homes = v * r[:, None] * np.array([[0.7, 0.55, 0.7]]) + np.array([[0.0, 0.55, 0.0]])
    return homes, rng.uniform(0, 1, SEED_COUNT)


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The clearing for one setting of the dials (calm_response lifts the mist, warms the light, stills the pond)."""
    calm = float(np.clip(d["calm_response"], 0.0, 1.0))
    mist = float(np.clip(d["mist"], 0.0, 1.0)) * (1.0 - calm)
    breeze = float(np.clip(d["breeze"], 0.0, 1.0)) * (1.0 - 0.7 * calm)
    s = InstanceSet()
    s.include(_clearing())
    px, pz = STUMP_XZ[0] - 3.2, STUMP_XZ[1] - 1.5
    s.add("cylinder", (px, 0.015, pz), (3.2, 0.03, 2.2), (0.16, 0.26, 0.3), pattern=POND + 0.9 * calm)
    # The pacer: glowing seeds floating over the stump (the group's origin is the stump top).
    homes, phase = _seed_homes()
    sx, sz = STUMP_XZ
    pace = 1.0 if float(np.clip(d["pacer"], 0.0, 1.0)) >= 0.5 else 0.0
    bpm = float(np.clip(d["breaths_per_min"], 4.0, 7.0))
    # Motion: a dash of 0.1 mm at 0 m/s, i.e. standing still, so the shared shadow pass (drawn once per level)
    # skips the seeds like other moving things instead of freezing their shadows where they were.
    s.add("sphere", homes, (0.085, 0.085, 0.085), (1.0, 0.85, 0.45), group=(sx, 0.5, sz, 0.0), pattern=SEED,
          motion=(-1e-4, 0.0, 0.0, 0.0), emissive=1.2, anim=np.stack([np.full(SEED_COUNT, SEED_CODE), np.full(SEED_COUNT, bpm),
                                       np.full(SEED_COUNT, pace), phase], 1))
    # Shafts of sunlight into the clearing as the air clears and warms (faint glass-like columns).
    if calm > 0.05:
        shafts = np.array([[-1.5, 4.0, -9.0], [1.8, 4.0, -7.5], [0.2, 4.0, -11.0]])
        s.add("cube", shafts, (0.9, 9.0, 0.9), (1.0, 0.9, 0.6), quat=SHAFT_TILT,
              emissive=0.5, alpha=0.03 + 0.08 * calm)
    sun = np.array([0.95, 0.93, 0.9]) * (1.0 - 0.25 * mist) * np.array([1.0 + 0.25 * calm, 1.0 + 0.05 * calm,
                                                                         1.0 - 0.3 * calm])
    look = SceneLook(
        sun_dir=(-0.35, 0.75, -0.55),
        sun_rgb=tuple(float(c) for c in sun),
        sky_zenith_rgb=(0.3 + 0.05 * calm, 0.48, 0.78 - 0.1 * calm),
        sky_horizon_rgb=(0.75 + 0.12 * calm, 0.8 + 0.03 * calm, 0.82 - 0.12 * calm),
        ground_ambient_rgb=(0.24 + 0.05 * calm, 0.27 + 0.02 * calm, 0.2 - 0.03 * calm),
        fog_rgb=(0.78 + 0.1 * calm, 0.82 + 0.03 * calm, 0.82 - 0.1 * calm),
        fog_density=0.002 + 0.075 * mist,
    )
    return s.build(look, (0.0, 0.0, 0.0), gaze_pitch_rad=-0.12, view_fovy_deg=VIEW_FOVY_DEG, wind=breeze,
                   shadow_center=(0.0, 0.0, -7.0), shadow_radius_m=22.0,
                   own_pacer=bool(pace))  # the seeds are the pacer: no separate orb


VIEW_FOVY_DEG = 64.0  # the default view: the clearing, the stump with its seeds, the pond and the trees


class Forest(Environment):
    """A forest clearing: seeds of light breathe with the pacer, calm lifts the mist and warms the light."""

    name = "forest"
    title = "Relaxation: forest clearing"
    kind = "relaxation"
    targets = ("relaxation", "paced breathing", "HRV biofeedback")
    dials = DIALS
    levels = LEVELS
    shader = SHADER

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = Forest()
