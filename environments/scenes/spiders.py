"""``spiders``: a sunny living room where spiders appear, from a framed picture to spiders running at your feet.

The hierarchy follows how spider-phobic patients and clinicians grade exposure
(picture, then a contained spider far away, then a free spider: nearer, larger,
moving, several, hairy, running towards you, on the table in front of you, at
your feet). Each level's dials are listed with its description so the clinician
sees exactly what changes. Every spider is a body, an abdomen and eight jointed
legs (instanced parts); legs walk and spiders move on the GPU from the frame time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np

from environments.environment import ENV_MATERIAL_BASE, Dial, Environment, EnvironmentShader, Level
from environments.scene_build import (
    CARPET,
    FABRIC,
    GLASS,
    GRASS,
    WOOD,
    InstanceSet,
    SceneBuild,
    SceneLook,
)

# This environment's own materials (shaded by SHADER below, nowhere else).
SPIDER = ENV_MATERIAL_BASE  # fine glossy bristles
HAIRY = ENV_MATERIAL_BASE + 1  # coarse matt hair (tarantula-like)
PRINT = ENV_MATERIAL_BASE + 2  # the framed print's paper

DIALS = (
    Dial("distance_m", "m", 0.1, 6.0, 2.5, True, "floor distance from the feet to the nearest free spider "
         "(where a darting one stops) or to the closed box", fear_rises_with_value=False),
    Dial("size_cm", "cm", 0.5, 30.0, 6.0, True, "leg span of the largest spider"),
    Dial("count", "", 1.0, 12.0, 1.0, True, "how many spiders are in the room"),
    Dial("speed", "", 0.0, 1.0, 0.0, True, "0 still .. 1 running (about 0.6 m/s)"),
    Dial("approach", "", 0.0, 1.0, 0.0, True, "0 wanders in circles, 1 darts towards the patient and back"),
    Dial("hairiness", "", 0.0, 1.0, 0.2, True, "0 smooth thin legs .. 1 hairy thick legs (tarantula-like)"),
    Dial("contained", "", 0.0, 1.0, 0.0, True, "1 keeps the spider in a closed glass box",
         fear_rises_with_value=False),
    Dial("picture", "", 0.0, 1.0, 0.0, True, "1 shows only a framed picture of a spider on the far wall",
         fear_rises_with_value=False),
    Dial("on_table", "", 0.0, 1.0, 0.0, True, "share of the spiders on the table in front of the patient, "
         "the biggest first (1: all; a closed box stands there from 0.5)"),
)

SHADER = EnvironmentShader(
    vertex="""
void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {
    // anim = (hip x, hip z, gait phase rad, leg span m); span 0: not a leg.
    if (anim.w <= 0.0) return;
    // A leg swings about its hip (alternating tetrapod gait, stride ~ 0.45 leg spans) and lifts on the
    // forward swing; a resting leg twitches now and then.
    float gp = travelled / (0.45 * anim.w) * 6.2831853 + anim.z;
    float walking = travelled > 0.0 ? 1.0 : 0.0;
    float swing = walking * 0.32 * sin(gp) + 0.07 * pow(max(sin(t * 0.9 + anim.z * 2.3 + anim.x * 37.0), 0.0), 24.0);
    vec2 d = p.xz - anim.xy;
    float cs = cos(swing), sn = sin(swing);
    p = vec3(cs * d.x + sn * d.y + anim.x, p.y + walking * 0.35 * length(d) * max(cos(gp), 0.0),
             -sn * d.x + cs * d.y + anim.y);
    n = vec3(cs * n.x + sn * n.z, n.y, -sn * n.x + cs * n.z);
}
""",
    fragment=f"""
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {{
    if (pattern == {SPIDER:.1f} || pattern == {HAIRY:.1f}) {{  // fine bristles; hairy: coarser and matt
        bool hairy = pattern == {HAIRY:.1f};
        vec3 cell = floor(local * (hairy ? 700.0 : 1400.0));
        float bristle = hash(cell.xy + cell.z * 17.0);
        base *= hairy ? 0.55 + 0.9 * bristle * bristle : 0.8 + 0.35 * bristle;
        spec_k = hairy ? 0.03 : 0.25;
        shininess = hairy ? 8.0 : 60.0;
        return true;
    }}
    if (pattern == {PRINT:.1f}) {{  // framed print: paper white with a faint grain
        base *= 0.95 + 0.05 * hash(floor(local.xy * 300.0));
        return true;
    }}
    return false;
}}
""",
)


def _lv(distance_m, size_cm, count, speed, approach=0.0, hairiness=0.2, contained=0.0, picture=0.0, on_table=0.0):
    return dict(distance_m=distance_m, size_cm=size_cm, count=count, speed=speed, approach=approach,
                hairiness=hairiness, contained=contained, picture=picture, on_table=on_table)


# Every fear-relevant dial moves one way only up the hierarchy (nearer, bigger, more, faster, hairier, out of the
# box, onto the table), so a step up never gives back something a step down took away. The picture counts as
# contained: nothing real is in the room yet.
_LEVELS: list[tuple[str, str, dict[str, float]]] = [
    ("Picture on the far wall", "A framed picture of a spider hangs above the sideboard on the far wall, 5.5 m "
     "away; there is no real spider in the room.",
     _lv(5.5, 6, 1, 0.0, contained=1.0, picture=1.0)),
    ("Closed box across the room", "A small spider (6 cm) sits still inside a closed glass box on the floor by the "
     "sideboard across the room, 4.7 m away.",
     _lv(4.7, 6, 1, 0.0, contained=1.0)),
    ("Closed box, 3.5 m", "The closed glass box now stands on the rug 3.5 m in front of you; the small spider "
     "inside sits still.",
     _lv(3.5, 6, 1, 0.0, contained=1.0)),
    ("Closed box, 2.5 m", "The closed glass box stands on the rug 2.5 m in front of you; you can make out the "
     "spider's legs through the glass.",
     _lv(2.5, 6, 1, 0.0, contained=1.0)),
    ("Free spider, 2.5 m", "The box is gone: the small spider (6 cm), free, sits still on the rug 2.5 m in front "
     "of you; nothing between you and it.",
     _lv(2.5, 6, 1, 0.0)),
    ("Free spider, 1.5 m", "The small spider sits still on the rug 1.5 m in front of you.",
     _lv(1.5, 6, 1, 0.0)),
    ("Small spider walking", "The small spider walks slowly in circles on the rug 1.2 m in front of you.",
     _lv(1.2, 6, 1, 0.2)),
    ("Large house spider walking", "A giant house spider (10 cm leg span, long legs) walks slowly on the rug "
     "1.2 m away.",
     _lv(1.2, 10, 1, 0.25)),
    ("Large spider walking, 1 m", "The giant house spider walks around faster on the rug 1 m in front of you.",
     _lv(1.0, 10, 1, 0.35)),
    ("Big hairy spider", "A big hairy spider (15 cm, tarantula-like, thick legs) walks on the rug 1 m away.",
     _lv(1.0, 15, 1, 0.35, hairiness=1.0)),
    ("Three spiders dart towards you", "Three spiders, the biggest hairy (15 cm), dart towards you across the rug "
     "in bursts; the nearest stops 60 cm from your feet, then they turn and run back.",
     _lv(0.6, 15, 3, 0.5, approach=1.0, hairiness=1.0)),
    ("Spider on the table", "The big hairy spider is on the table right in front of you and crosses it towards "
     "your hands; two more dart across the rug to 50 cm from your feet.",
     _lv(0.5, 15, 3, 0.5, approach=1.0, hairiness=1.0, on_table=0.25)),
    ("Spiders at your feet", "Five spiders (up to 18 cm): one crosses the table towards your hands, four run "
     "towards you on the floor and stop within 35 cm of your feet.",
     _lv(0.35, 18, 5, 0.6, approach=1.0, hairiness=1.0, on_table=0.25)),
    ("Many running spiders", "Eight spiders, big hairy ones among them (up to 20 cm): two cross the table towards "
     "your hands, the others run towards you and around you on the floor; the nearest stops at your feet.",
     _lv(0.25, 20, 8, 0.7, approach=1.0, hairiness=1.0, on_table=0.25)),
]


LOOK = SceneLook(
    sun_dir=(-0.78, 0.5, -0.25),  # low afternoon sun through the window in the left wall
    sun_rgb=(0.95, 0.86, 0.72),
    sky_zenith_rgb=(0.35, 0.55, 0.85),
    sky_horizon_rgb=(0.78, 0.84, 0.9),
    ground_ambient_rgb=(0.6, 0.55, 0.48),
    fog_rgb=(0.8, 0.85, 0.9),
    fog_density=0.0,
    indoor=True,
)

ROOM_X_M = 3.0  # half width
ROOM_BACK_Z_M = -5.5  # far wall
ROOM_FRONT_Z_M = 1.5  # wall behind the patient
ROOM_H_M = 2.6
RUG_TOP_M = 0.004
TABLE_XZ = (0.45, -0.75)
TABLE_TOP_M = 0.76
TABLE_SIZE = (0.9, 0.7)
SIDEBOARD_Z_M = -5.22
SIDEBOARD_TOP_M = 0.8
PICTURE_CENTER = (0.0, 1.65, ROOM_BACK_Z_M + 0.04)
RUN_MPS = 0.6  # speed dial 1.0
BOX_FARTHEST_M = 4.7  # a glass box on the floor, just in front of the sideboard
PICTURE_SPAN_M = 0.3  # the spider on the framed print
SPIDER_RGB = np.array([0.06, 0.045, 0.035])
HAIRY_RGB = np.array([0.16, 0.1, 0.065])


# ----------------------------------------------------------------------------- the room
@functools.lru_cache(maxsize=1)
def _room() -> InstanceSet:
    """Walls, window, furniture (seeded, so every run shows the same room)."""
    rng = np.random.default_rng(7)
    s = InstanceSet()
    x0, x1, zb, zf, h = -ROOM_X_M, ROOM_X_M, ROOM_BACK_Z_M, ROOM_FRONT_Z_M, ROOM_H_M
    depth, zc = zf - zb, (zf + zb) / 2
    wall = (0.86, 0.83, 0.74)
    white = (0.92, 0.92, 0.9)
    # Outside: a lawn and a hedge seen through the window.
    s.add("cube", (-20, -0.3, zc), (30, 0.6, 40), (0.3, 0.45, 0.18), pattern=GRASS)
    s.add("cube", (-9, 1.0, zc), (1.5, 2.0, 30), (0.16, 0.3, 0.12), pattern=GRASS)
    # Floor (pale oak), ceiling, walls with a window opening in the left wall (z -4..-1.4, y 0.9..2.2).
    s.add("cube", (0, -0.05, zc), (2 * x1, 0.1, depth), (0.74, 0.6, 0.43), pattern=WOOD)
    s.add("cube", (0, h + 0.05, zc), (2 * x1 + 0.2, 0.1, depth + 0.2), white)
    s.add("cube", (0, h / 2, zb - 0.05), (2 * x1, h, 0.1), wall, pattern=FABRIC)
    s.add("cube", (0, h / 2, zf + 0.05), (2 * x1, h, 0.1), wall, pattern=FABRIC)
    s.add("cube", (x1 + 0.05, h / 2, zc), (0.1, h, depth), wall, pattern=FABRIC)
    wz0, wz1, wy0, wy1 = -4.0, -1.4, 0.9, 2.2
    for zz0, zz1 in ((zb, wz0), (wz1, zf)):
        s.add("cube", (x0 - 0.05, h / 2, (zz0 + zz1) / 2), (0.1, h, zz1 - zz0), wall, pattern=FABRIC)
    s.add("cube", (x0 - 0.05, wy0 / 2, (wz0 + wz1) / 2), (0.1, wy0, wz1 - wz0), wall, pattern=FABRIC)
    s.add("cube", (x0 - 0.05, (wy1 + h) / 2, (wz0 + wz1) / 2), (0.1, h - wy1, wz1 - wz0), wall, pattern=FABRIC)
    # Window sill (one clear pane: no bars casting lines across the floor).
    s.add("cube", (x0 + 0.02, wy0 - 0.02, (wz0 + wz1) / 2), (0.25, 0.04, wz1 - wz0 + 0.1), white)
    # Skirting boards.
    s.add("cube", [(0, 0.05, zb + 0.01), (0, 0.05, zf - 0.01)], (2 * x1, 0.1, 0.02), white)
    s.add("cube", [(x1 - 0.01, 0.05, zc)], (0.02, 0.1, depth), white)
    # A cream rug ahead of the patient (where the spiders walk: dark spiders show on it).
    s.add("cube", (-0.1, RUG_TOP_M / 2, -2.4), (2.6, RUG_TOP_M, 3.6), (0.78, 0.74, 0.66), pattern=CARPET)
    # Sideboard on the far wall, a lamp and a plant on it.
    oak = (0.5, 0.34, 0.2)
    s.add("cube", (0, SIDEBOARD_TOP_M / 2, SIDEBOARD_Z_M), (1.8, SIDEBOARD_TOP_M, 0.5), oak, pattern=WOOD)
    s.add("cube", [(-0.45, 0.45, SIDEBOARD_Z_M + 0.255), (0.45, 0.45, SIDEBOARD_Z_M + 0.255)], (0.8, 0.6, 0.01),
          (0.42, 0.28, 0.16))
    s.add("cylinder", (-0.65, SIDEBOARD_TOP_M + 0.2, SIDEBOARD_Z_M), (0.05, 0.4, 0.05), (0.3, 0.3, 0.3))
    s.add("cylinder", (-0.65, SIDEBOARD_TOP_M + 0.45, SIDEBOARD_Z_M), (0.32, 0.25, 0.32), (0.95, 0.9, 0.78),
          emissive=0.3)
    s.add("cylinder", (0.65, SIDEBOARD_TOP_M + 0.09, SIDEBOARD_Z_M), (0.18, 0.18, 0.18), (0.75, 0.4, 0.25))
    s.add("sphere", (0.65, SIDEBOARD_TOP_M + 0.32, SIDEBOARD_Z_M), (0.42, 0.38, 0.42), (0.15, 0.35, 0.12),
          pattern=GRASS)
    # The picture frame above the sideboard (its content depends on the level).
    px, py, pz = PICTURE_CENTER
    s.add("cube", (px, py, pz - 0.02), (0.92, 0.72, 0.03), (0.12, 0.1, 0.08))
    # Sofa along the right wall, facing the room.
    blue = (0.22, 0.3, 0.45)
    s.add("cube", (2.55, 0.25, -2.6), (0.9, 0.5, 2.2), blue, pattern=FABRIC)
    s.add("cube", (2.85, 0.65, -2.6), (0.3, 0.8, 2.2), blue, pattern=FABRIC)
    s.add("cube", [(2.55, 0.4, -3.65), (2.55, 0.4, -1.55)], (0.9, 0.8, 0.18), blue, pattern=FABRIC)
    s.add("cube", [(2.45, 0.55, -3.0), (2.45, 0.55, -2.2)], (0.6, 0.12, 0.75), (0.28, 0.37, 0.55), pattern=FABRIC)
    # Bookshelf on the right wall near the patient, filled with books.
    s.add("cube", (2.8, 1.0, -0.2), (0.35, 2.0, 1.2), oak, pattern=WOOD)
    shelves_y = np.array([0.42, 0.82, 1.22, 1.62])
    nb = 18
    bz = np.tile(np.linspace(-0.7, 0.3, nb), len(shelves_y)) + rng.uniform(-0.01, 0.01, nb * len(shelves_y))
    bh = rng.uniform(0.2, 0.3, nb * len(shelves_y))
    by = np.repeat(shelves_y, nb) + bh / 2
    s.add("cube", np.stack([np.full_like(bz, 2.6), by, bz], 1), np.stack([np.full_like(bz, 0.2), bh, np.full_like(bz, 0.045)], 1),
          rng.uniform(0.15, 0.8, (len(bz), 3)) * np.array([1.0, 0.8, 0.7]))
    # The table in front of the patient (to the right of the line of sight), a mug and a book on it.
    tx, tz = TABLE_XZ
    tw, td = TABLE_SIZE
    s.add("cube", (tx, TABLE_TOP_M - 0.02, tz), (tw, 0.04, td), (0.62, 0.46, 0.3), pattern=WOOD)
    legs = [(tx + sx * (tw / 2 - 0.05), (TABLE_TOP_M - 0.04) / 2, tz + sz * (td / 2 - 0.05))
            for sx in (-1, 1) for sz in (-1, 1)]
    s.add("cube", legs, (0.05, TABLE_TOP_M - 0.04, 0.05), (0.55, 0.4, 0.26))
    s.add("cylinder", (tx + 0.3, TABLE_TOP_M + 0.05, tz - 0.15), (0.08, 0.1, 0.08), (0.85, 0.3, 0.2))
    s.add("cube", (tx + 0.25, TABLE_TOP_M + 0.015, tz + 0.18), (0.22, 0.03, 0.16), (0.2, 0.35, 0.5))
    # A floor lamp and a ceiling lamp.
    s.add("cylinder", (-2.5, 0.8, -4.8), (0.04, 1.6, 0.04), (0.2, 0.2, 0.2))
    s.add("cone", (-2.5, 1.7, -4.8), (0.45, 0.3, 0.45), (0.95, 0.92, 0.82), emissive=0.25)
    s.add("sphere", (0, h - 0.12, -2.0), (0.35, 0.2, 0.35), (0.97, 0.95, 0.9), emissive=0.6)
    return s


# ----------------------------------------------------------------------------- spider geometry
def _quat_from_y(d: np.ndarray) -> np.ndarray:
    """Quaternions (x, y, z, w) turning +Y onto each unit row of ``d`` (never exactly -Y here)."""
    y = np.array([0.0, 1.0, 0.0])
    axis = np.cross(np.broadcast_to(y, d.shape), d)
    q = np.concatenate([axis, (1.0 + d @ y)[:, None]], axis=1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _segments(a: np.ndarray, b: np.ndarray, thick: np.ndarray):
    """Cylinders from points ``a`` to ``b``: (offset, scale, quat) rows."""
    v = b - a
    length = np.linalg.norm(v, axis=1)
    return (a + b) / 2, np.stack([thick, length, thick], 1), _quat_from_y(v / length[:, None])


@functools.lru_cache(maxsize=8)
def _template(hairy_level: int) -> dict[str, tuple[np.ndarray, ...]]:
    """One spider of leg span 1 facing -Z, standing on y = 0: per mesh (offset, scale, quat, anim, tone).

    ``anim`` is (hip x, hip z, gait phase, 1 for legs else 0); ``tone`` scales the spider's colour.
    ``hairy_level`` (0..4) thickens the legs. Cached: levels share the same few templates.
    """
    hair = hairy_level / 4.0
    body_y = 0.075
    ceph = np.array([0.0, body_y, -0.05])
    spheres = [  # offset, scale, tone
        (ceph, (0.11, 0.065, 0.13), 1.0),
        ((0.0, body_y + 0.02, 0.1), (0.13 + 0.03 * hair, 0.11 + 0.02 * hair, 0.2 + 0.02 * hair), 1.15),  # abdomen
        ((-0.016, body_y - 0.01, -0.12), (0.028, 0.035, 0.035), 0.8),  # chelicerae
        ((0.016, body_y - 0.01, -0.12), (0.028, 0.035, 0.035), 0.8),
        ((-0.012, body_y + 0.03, -0.1), (0.014, 0.014, 0.014), 0.2),  # front eyes (glossy black)
        ((0.012, body_y + 0.03, -0.1), (0.014, 0.014, 0.014), 0.2),
    ]
    # Eight legs: hips around the cephalothorax; angle from forward, horizontal reach (half span).
    angles = np.radians([32.0, 72.0, 112.0, 150.0])
    reach = np.array([0.5, 0.42, 0.4, 0.48])
    hips, knees, feet, phase = [], [], [], []
    for side in (-1.0, 1.0):
        for i, (ang, r) in enumerate(zip(angles, reach)):
            u = np.array([side * math.sin(ang), 0.0, -math.cos(ang)])
            hip = ceph + u * 0.05
            knee = hip + u * (0.38 * r) + np.array([0.0, 0.095 + 0.02 * hair, 0.0])
            foot = np.array([hip[0], 0.004, hip[2]]) + u * r
            hips.append(hip)
            knees.append(knee)
            feet.append(foot)
            phase.append(math.pi * ((i + (side > 0)) % 2))  # alternating tetrapod gait
    hips, knees, feet, phase = map(np.array, (hips, knees, feet, phase))
    t_up = np.full(8, 0.024 + 0.014 * hair)
    t_lo = np.full(8, 0.018 + 0.012 * hair)
    o1, s1, q1 = _segments(hips, knees, t_up)
    o2, s2, q2 = _segments(knees, feet, t_lo)
    leg_anim = np.stack([hips[:, 0], hips[:, 2], phase, np.ones(8)], 1)
    # Pedipalps: two short feelers at the front.
    pa = np.array([[-0.02, body_y, -0.11], [0.02, body_y, -0.11]])
    pb = np.array([[-0.045, 0.01, -0.17], [0.045, 0.01, -0.17]])
    o3, s3, q3 = _segments(pa, pb, np.full(2, 0.014 + 0.006 * hair))
    cyl_off = np.concatenate([o1, o2, o3])
    cyl_scale = np.concatenate([s1, s2, s3])
    cyl_quat = np.concatenate([q1, q2, q3])
    cyl_anim = np.concatenate([leg_anim, leg_anim, np.zeros((2, 4))])
    cyl_tone = np.concatenate([np.full(8, 1.0), np.full(8, 0.9), np.full(2, 0.9)])
    sph_off = np.concatenate([np.array([s[0] for s in spheres], float), knees])
    knee_s = (t_up[:, None] * 1.15) * np.ones((8, 3))
    sph_scale = np.concatenate([np.array([s[1] for s in spheres], float), knee_s])
    sph_quat = np.tile([0.0, 0.0, 0.0, 1.0], (len(sph_off), 1))
    sph_anim = np.concatenate([np.zeros((len(spheres), 4)), leg_anim])
    sph_tone = np.concatenate([np.array([s[2] for s in spheres]), np.full(8, 0.95)])
    return {
        "sphere": (sph_off, sph_scale, sph_quat, sph_anim, sph_tone),
        "cylinder": (cyl_off, cyl_scale, cyl_quat, cyl_anim, cyl_tone),
    }


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b of (x, y, z, w) quaternion rows."""
    ax, ay, az, aw = np.moveaxis(np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape)), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape)), -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz], -1)


def add_spiders(s: InstanceSet, origin: np.ndarray, yaw: np.ndarray, span_m: np.ndarray, motion: np.ndarray,
                hairiness: np.ndarray, *, mount: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Add ``len(origin)`` spiders in one vectorised call per mesh and hairiness class.

    Each spider is a group (origin, yaw, motion) of parts scaled by its leg span;
    its legs carry the hip pivot and gait phase the vertex shader animates.
    ``mount`` (quaternion, centre) instead fixes the parts in space (the picture).
    """
    origin = np.atleast_2d(np.asarray(origin, float))
    n = len(origin)
    yaw, span_m, hairiness = (np.broadcast_to(np.asarray(a, float), (n,)) for a in (yaw, span_m, hairiness))
    motion = np.broadcast_to(np.asarray(motion, float), (n, 4))
    classes = np.clip(np.rint(hairiness * 4), 0, 4).astype(int)
    for hc in np.unique(classes):
        idx = np.nonzero(classes == hc)[0]
        hair = hc / 4.0
        rgb = SPIDER_RGB + (HAIRY_RGB - SPIDER_RGB) * hair
        for mesh, (off, scale, quat, anim, tone) in _template(int(hc)).items():
            k = len(off)
            sp = np.repeat(span_m[idx], k)[:, None]
            o = np.tile(off, (len(idx), 1)) * sp
            q = np.tile(quat, (len(idx), 1))
            if mount is not None:
                mq, centre = mount
                o = _rotate(mq, o) + centre
                q = _quat_mul(np.asarray(mq, float), q)
                group = np.zeros((len(o), 4))
                mo = np.zeros((len(o), 4))
                an = np.zeros((len(o), 4))
            else:
                group = np.repeat(np.concatenate([origin[idx], yaw[idx, None]], 1), k, axis=0)
                mo = np.repeat(motion[idx], k, axis=0)
                an = np.tile(anim, (len(idx), 1))
                an[:, 0:2] *= sp
                an[:, 3] *= sp[:, 0]
            color = np.tile(tone, len(idx))[:, None] * rgb
            s.add(mesh, o, np.tile(scale, (len(idx), 1)) * sp, color, quat=q, group=group, motion=mo,
                  pattern=HAIRY if hair >= 0.5 else SPIDER, anim=an)


def _rotate(q, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (rows) by the unit quaternion ``q``."""
    q = np.asarray(q, float)
    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


# ----------------------------------------------------------------------------- levels
def _placement(d: Mapping[str, float]):
    """Where the free spiders are, which way they face and how they move (seeded per count).

    ``on_table`` is the share of the spiders on the table in front of the
    patient (the biggest first); the rest are on the floor, the first straight
    ahead at ``distance_m``. Returns per spider (origin, yaw, span, motion,
    hairiness) plus the points the level's default view frames.
    """
    count = max(1, round(d["count"]))
    rng = np.random.default_rng(100 + count)
    dist = max(float(d["distance_m"]), 0.15)
    size_m = max(float(d["size_cm"]), 0.5) / 100.0
    speed_mps = max(float(d["speed"]), 0.0) * RUN_MPS
    dash = d["approach"] >= 0.5
    share = min(max(float(d["on_table"]), 0.0), 1.0)
    n_table = count if share >= 0.5 and count == 1 else int(round(share * count))
    n_floor = count - n_table
    span = np.full(count, size_m)
    hair = np.full(count, float(np.clip(d["hairiness"], 0.0, 1.0)))
    if count > 1:
        span[1:] = size_m * rng.uniform(0.55, 0.95, count - 1)
        hair[1:] = hair[0] * (np.arange(1, count) % 2)  # every other one as hairy as the first
    tx, tz = TABLE_XZ
    tw, td = TABLE_SIZE
    # On the table: the first one near the edge facing the patient (where the hands rest), others around it.
    xt = np.concatenate([[tx - 0.1], tx + rng.uniform(-tw / 3, tw / 3, max(n_table - 1, 0))])[:n_table]
    zt = np.concatenate([[tz + td / 2 - 0.12], tz + rng.uniform(-td / 3, td / 3, max(n_table - 1, 0))])[:n_table]
    # On the floor: the first straight ahead at ``dist``; the others spread out, around the feet when close.
    spread = math.radians(35.0 + 65.0 * min(max((0.8 - dist) / 0.5, 0.0), 1.0))
    r = np.concatenate([[dist], dist + rng.uniform(0.05, 1.5, max(n_floor - 1, 0)) * min(1.0, 0.3 + dist)])[:n_floor]
    a = np.concatenate([[-0.12], rng.uniform(-spread, 0.35 * spread, max(n_floor - 1, 0))])[:n_floor]
    xf = np.clip(np.sin(a) * r, -ROOM_X_M + 0.4, ROOM_X_M - 1.2)
    zf = np.clip(-np.cos(a) * r, ROOM_BACK_Z_M + 0.8, ROOM_FRONT_Z_M - 0.3)
    x, z = np.concatenate([xt, xf]), np.concatenate([zt, zf])
    y = np.concatenate([np.full(n_table, TABLE_TOP_M), np.full(n_floor, RUG_TOP_M)])
    radius = np.concatenate([np.full(n_table, 0.12),
                             np.clip(0.25 + 0.1 * rng.random(n_floor), 0.1, max(dist, 0.3))])
    dash_len = np.concatenate([np.full(n_table, 0.35), np.full(n_floor, 1.8)])
    face_patient = np.arctan2(x, z)  # forward (-sin yaw, -cos yaw) points from (x, z) to the feet
    motion = np.zeros((count, 4))
    yaw = face_patient + rng.uniform(-0.6, 0.6, count)
    stops = np.stack([x, y, z], 1)
    if speed_mps > 0 and dash:
        # Start dash_len further out on the same bearing; run in, stop at (x, z), run back.
        bearing = np.stack([x, z], 1) / np.maximum(np.hypot(x, z), 1e-6)[:, None]
        x = x + bearing[:, 0] * dash_len
        z = z + bearing[:, 1] * dash_len
        yaw = np.arctan2(x, z)
        phase = np.full(count, 0.47)  # every dash nearly at its stop at t = 0 (the default view shows them close)
        if count > 2:
            phase[2:] = rng.uniform(0.0, 1.0, count - 2)
        motion = np.stack([-dash_len, np.full(count, speed_mps), phase, np.zeros(count)], 1)
    elif speed_mps > 0:
        # Walk in circles passing through the described position: centre one radius to the side.
        direction = rng.choice([-1.0, 1.0], count)
        phase = rng.uniform(0.0, 2 * math.pi, count)
        cx, cz = x - radius * np.cos(phase), z + radius * np.sin(phase)
        x, z = cx, cz
        yaw = np.zeros(count)
        motion = np.stack([radius, direction * speed_mps / radius, phase, np.zeros(count)], 1)
    # Frame the first spider and those within 0.6 m of it (where they stop when they dart: where they are at
    # t = 0); the others are the scene around them, not what the view is about.
    near = np.linalg.norm(stops - stops[0], axis=1) < 0.6
    return np.stack([x, y, z], 1), yaw, span, motion, hair, stops[near]


STANDING_EYE_M = 1.65
SEATED_EYE_M = 1.2  # at the table: how spider exposure is done in the clinic, the spider in front of the hands
VIEW_MARGIN = 1.35  # the framed spiders fill about three quarters of the view's height


def framing(points: np.ndarray, min_radius_m: float, eye_m: float = STANDING_EYE_M,
            min_fovy_deg: float = 35.0) -> tuple[float, float, float]:
    """(pitch, yaw, vertical fov in degrees) of a view from an eye ``eye_m`` high that frames ``points``.

    The view looks at their centre; the field of view covers every point and a
    sphere of ``min_radius_m`` around the centre (so a lone small spider is seen
    with a little of the rug around it), with a margin, between 35 and 100 degrees.
    """
    eye = np.array([0.0, eye_m, 0.0])
    centre = np.asarray(points, float).mean(axis=0)
    v = centre - eye
    dist = float(np.linalg.norm(v))
    u = v / dist
    w = np.asarray(points, float) - eye
    cosang = (w @ u) / np.maximum(np.linalg.norm(w, axis=1), 1e-6)
    half = max(float(np.arccos(np.clip(cosang, -1.0, 1.0)).max()), math.atan2(min_radius_m, dist))
    fovy = min(100.0, max(min_fovy_deg, math.degrees(2.0 * math.atan(VIEW_MARGIN * math.tan(half)))))
    pitch = math.atan2(float(v[1]), float(math.hypot(v[0], v[2])))
    yaw = math.atan2(-float(v[0]), -float(v[2]))  # positive turns left (towards -x)
    return pitch, yaw, fovy


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The living room for one setting of the dials: the picture, a closed box, or free spiders."""
    s = InstanceSet()
    s.include(_room())
    px, py, pz = PICTURE_CENTER
    if d["picture"] >= 0.5:
        # A framed print of a spider seen from above: the model mounted flat on white paper.
        s.add("cube", (px, py, pz), (0.84, 0.64, 0.01), (0.95, 0.94, 0.9), pattern=PRINT)
        span = PICTURE_SPAN_M  # a print's spider, not the room's: the size dial grades the real ones
        mount = (np.array([math.sin(math.pi / 4), 0.0, 0.0, math.cos(math.pi / 4)]), np.array([px, py - 0.02, pz]))
        add_spiders(s, np.zeros((1, 3)), 0.0, span, np.zeros(4), float(d["hairiness"]), mount=mount)
        focus, room_m = np.array([[px, py, pz]]), 0.9  # the picture with the sideboard below it
    else:
        # A quiet landscape print instead: sky, hills, meadow.
        s.add("cube", (px, py + 0.12, pz), (0.84, 0.4, 0.01), (0.55, 0.7, 0.88))
        s.add("cube", (px, py - 0.2, pz), (0.84, 0.24, 0.01), (0.35, 0.55, 0.25), pattern=GRASS)
        s.add("sphere", (px - 0.15, py - 0.08, pz), (0.6, 0.2, 0.01), (0.3, 0.45, 0.3))
        if d["contained"] >= 0.5:
            if d["on_table"] >= 0.5:
                bx, by, bz = TABLE_XZ[0] - 0.12, TABLE_TOP_M, TABLE_XZ[1] + 0.05
            else:  # on the floor straight ahead at distance_m (by the sideboard at most): it slides, never jumps
                bx, by, bz = 0.0, RUG_TOP_M, -min(max(float(d["distance_m"]), 0.5), BOX_FARTHEST_M)
            size_m = max(float(d["size_cm"]), 0.5) / 100.0
            w, hgt, dep = max(0.3, 3 * size_m), max(0.2, 2 * size_m), max(0.22, 3 * size_m)
            s.add("cube", (bx, by + 0.01, bz), (w, 0.02, dep), (0.45, 0.35, 0.22))  # substrate
            s.add("cube", (bx, by + hgt + 0.008, bz), (w + 0.01, 0.016, dep + 0.01), (0.12, 0.12, 0.13))  # lid
            s.add("cube", (bx, by + hgt / 2 + 0.01, bz), (w, hgt - 0.02, dep), (0.7, 0.82, 0.86), pattern=GLASS,
                  alpha=0.12)
            speed = max(float(d["speed"]), 0.0) * RUN_MPS
            r = min(w, dep) / 2 - size_m * 0.6
            motion = (r, speed / r, 1.0, 0.0) if speed > 0 and r > 0.01 else (0.0, 0.0, 0.0, 0.0)
            add_spiders(s, [(bx, by + 0.02, bz)], 0.8, size_m, motion, float(d["hairiness"]))
            focus, room_m = np.array([[bx, by + hgt / 2, bz]]), 0.45  # the box and what it stands on
        else:
            origin, yaw, span, motion, hair, focus = _placement(d)
            add_spiders(s, origin, yaw, span, motion, hair)
            room_m = 0.15 if focus[0, 1] > RUG_TOP_M else 0.5  # a table top, or the rug around them
    # Untracked displays frame what the level is about (a headset's own pose replaces this), seated at the
    # table when that is where it happens.
    eye_m = SEATED_EYE_M if focus[0, 1] >= TABLE_TOP_M - 0.01 and focus[0, 1] < 1.0 else STANDING_EYE_M
    # at the table the view may narrow further: spiders within reach of the hands fill it, as they would the eyes
    pitch, yaw, fovy = framing(focus, room_m, eye_m, min_fovy_deg=26.0 if eye_m == SEATED_EYE_M else 35.0)
    return s.build(
        LOOK,
        (0.0, 0.0, 0.0),
        gaze_pitch_rad=pitch,
        gaze_yaw_rad=yaw,
        view_fovy_deg=fovy,
        view_eye_height_m=eye_m,
        wind=0.0,
        shadow_center=(0.0, 1.2, -2.0),
        shadow_radius_m=5.0,
    )


class Spiders(Environment):
    """A sunny living room where spiders appear: picture, closed box, then free spiders nearer, bigger, faster."""

    name = "spiders"
    title = "Spiders: living room"
    kind = "phobia"
    targets = ("arachnophobia",)
    dials = DIALS
    levels = tuple(Level(title, description, dials) for title, description, dials in _LEVELS)
    shader = SHADER

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = Spiders()
