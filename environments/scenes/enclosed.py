"""``enclosed``: a lift car that shrinks around the patient, its doors close, it moves, dims, stalls and fills up.

The hierarchy follows what claustrophobic patients report as harder: less
space (narrower, shallower, a lower ceiling), no way out (the doors close, the
car leaves the floor), less light, being stuck (the lift stalls between floors)
and being pressed in by strangers. The patient's feet never move: the car is
built around them and its walls, ceiling and doors travel (eased by the
renderer) while the viewpoint stays still, so a level change never moves the
patient (comfort).

Everything that moves does so on the GPU from the frame time (this module's
``env_vertex``): the floor indicator's seven-segment digits count the floors
while the car travels and blink when it stalls, the shaft wall slides past the
door windows, the ceiling light flickers when the car is stuck, and the other
passengers breathe, shift their weight and now and then glance back at you.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from environments.environment import ENV_MATERIAL_BASE, Dial, Environment, EnvironmentShader, Level
from environments.scene_build import GLASS, GRASS, PAVING, WOOD, InstanceSet, SceneBuild, SceneLook, axis_quat

# This environment's own materials (shaded by SHADER below, nowhere else).
STEEL = ENV_MATERIAL_BASE  # brushed stainless steel wall panels with seams
STUDDED = ENV_MATERIAL_BASE + 1  # studded rubber floor
CONCRETE = ENV_MATERIAL_BASE + 2  # the shaft's rough concrete

# Markers in the anim column's w (what env_vertex does with a part).
SEGMENT, SHAFT, FLICKER, PERSON = -1.0, -2.0, -3.0, -4.0

DIALS = (
    Dial("width_m", "m", 0.9, 3.5, 1.6, True, "inside width of the car, wall to wall",
         fear_rises_with_value=False),
    Dial("depth_m", "m", 0.9, 3.5, 1.6, True, "from the back wall behind the patient to the doors in front",
         fear_rises_with_value=False),
    Dial("ceiling_m", "m", 1.85, 3.2, 2.4, True, "height of the ceiling above the floor (eyes are at 1.65 m)",
         fear_rises_with_value=False),
    Dial("light_level", "", 0.05, 1.0, 1.0, True, "1 bright ceiling light .. 0.05 only the dim emergency lamp",
         fear_rises_with_value=False),
    Dial("door_open_fraction", "", 0.0, 1.0, 1.0, True, "1 doors wide open onto the bright lobby, 0 shut",
         fear_rises_with_value=False),
    Dial("lift_moving", "", 0.0, 1.0, 0.0, True, "0 parked at the lobby, 1 between floors (travelling at "
         "1.5 m/s: the indicator counts, the shaft slides past the door windows)"),
    Dial("stalled", "", 0.0, 1.0, 0.0, True, "1 stuck between floors: the car stops, the indicator blinks, "
         "the ceiling light flickers and the emergency lamp comes on"),
    Dial("occupants", "", 0.0, 4.0, 0.0, True, "other passengers standing with the patient (they face the doors)"),
)


def _lv(width_m, depth_m, ceiling_m, light_level=1.0, door_open_fraction=0.0, lift_moving=0.0, stalled=0.0,
        occupants=0.0):
    return dict(width_m=width_m, depth_m=depth_m, ceiling_m=ceiling_m, light_level=light_level,
                door_open_fraction=door_open_fraction, lift_moving=lift_moving, stalled=stalled,
                occupants=occupants)


_LEVELS: list[tuple[str, str, dict[str, float]]] = [
    ("Large goods lift, doors open", "Standing in a large, brightly lit goods lift (3.4 x 3.4 m, 3.2 m high); its "
     "doors are wide open onto the lobby and nothing moves.",
     _lv(3.4, 3.4, 3.2, door_open_fraction=1.0)),
    ("Passenger lift, doors open", "A roomy passenger lift (2.2 x 2.2 m, 2.6 m high), bright, doors wide open "
     "onto the lobby.",
     _lv(2.2, 2.2, 2.6, door_open_fraction=1.0)),
    ("Doors half closed", "The same lift; its doors have slid half shut, the lobby still visible between them.",
     _lv(2.2, 2.2, 2.6, door_open_fraction=0.5)),
    ("Doors closed at the lobby", "The doors are shut; the lift waits at the lobby floor. The lobby shows "
     "through the narrow windows in the doors.",
     _lv(2.2, 2.2, 2.6)),
    ("Lift going up", "The lift travels up: the floor indicator above the doors counts the floors and the "
     "shaft wall slides past the door windows.",
     _lv(2.2, 2.2, 2.6, lift_moving=1.0)),
    ("Small lift", "A small passenger lift (1.5 x 1.5 m, 2.3 m high) travelling up; the walls are an arm's "
     "length away.",
     _lv(1.5, 1.5, 2.3, lift_moving=1.0)),
    ("Small lift, one stranger", "Travelling up in the small lift with a stranger standing in front of you; "
     "the light is dimmer.",
     _lv(1.5, 1.5, 2.3, light_level=0.7, lift_moving=1.0, occupants=1.0)),
    ("Two strangers, dim light", "A smaller lift (1.3 x 1.3 m, 2.2 m high), dim, two strangers in front of you, "
     "travelling up.",
     _lv(1.3, 1.3, 2.2, light_level=0.5, lift_moving=1.0, occupants=2.0)),
    ("The lift stalls", "Between two floors the lift stops: the indicator blinks, the ceiling light flickers "
     "and the amber emergency lamp comes on; the doors stay shut.",
     _lv(1.3, 1.3, 2.2, light_level=0.4, lift_moving=1.0, stalled=1.0, occupants=2.0)),
    ("Stuck with three strangers", "Stuck between floors in a 1.2 x 1.2 m car with three strangers pressed "
     "around you; the ceiling is low (2.05 m).",
     _lv(1.2, 1.2, 2.05, light_level=0.28, lift_moving=1.0, stalled=1.0, occupants=3.0)),
    ("Cramped and dark", "Stuck in a 1.05 x 1.05 m car, 1.95 m high, with three strangers; only a dim "
     "light remains.",
     _lv(1.05, 1.05, 1.95, light_level=0.15, lift_moving=1.0, stalled=1.0, occupants=3.0)),
    ("Tiny lift, emergency light only", "Crammed into a tiny service lift (0.95 x 1.0 m) with four strangers, "
     "stuck between floors in the amber emergency light; the ceiling is a hand's breadth above your head.",
     _lv(0.95, 1.0, 1.85, light_level=0.05, lift_moving=1.0, stalled=1.0, occupants=4.0)),
]


SHADER = EnvironmentShader(
    vertex=f"""
const int SEGMENTS[10] = int[10](63, 6, 91, 79, 102, 109, 125, 7, 127, 111);  // a..g bits of 0..9

float env_hash1(float x) {{ return fract(sin(x * 12.9898) * 43758.5453); }}

void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {{
    if (anim.w == {SEGMENT:.1f}) {{
        // Floor indicator: anim = (place * 8 + segment (7: the arrow), floors per second, first floor,
        // 1 when stalled). Unlit segments collapse and show the black panel behind them.
        // anim.z's whole part is the floor shown at t = 0, a half marks a stalled car (the display blinks).
        int place = int(anim.x + 0.5) / 8;
        int seg = int(anim.x + 0.5) - place * 8;
        float floor_shown = mod(floor(anim.z) + floor(t * anim.y), 40.0);
        int digit = place == 0 ? int(floor_shown / 10.0) : int(mod(floor_shown, 10.0));
        bool lit = seg == 7 ? (anim.y > 0.0 && fract(t * 1.2) < 0.7) : ((SEGMENTS[digit] >> seg) & 1) == 1;
        if (place == 0 && digit == 0) lit = seg == 7 && lit;  // no leading zero
        if (fract(anim.z) > 0.25 && fract(t * 0.9) > 0.55) lit = false;  // stalled: the display blinks
        if (!lit) p = vec3(0.0, -50.0, 0.0);
        return;
    }}
    if (anim.w == {SHAFT:.1f}) {{
        // A band on the shaft wall: slides down past the car at anim.y m/s, wrapping every anim.x metres.
        p.y -= mod(t * anim.y + anim.z, anim.x);
        return;
    }}
    if (anim.w == {FLICKER:.1f}) {{
        // The lit ceiling diffuser: when anim.x > 0 (stalled) it drops out in short flickering bursts.
        float burst = step(0.72, env_hash1(floor(t * 0.8)));
        float off = burst * step(0.45, env_hash1(floor(t * 14.0) + 7.0)) * step(0.5, anim.x);
        if (off > 0.5) p = vec3(0.0, -50.0, 0.0);
        return;
    }}
    if (anim.w == {PERSON:.1f}) {{
        // A passenger: anim = (neck height, phase, 1 for head parts, height scale).
        float ph = anim.y;
        // Breathing lifts the chest and shoulders a little; the weight shifts slowly from foot to foot.
        float breath = sin(t * 1.6 + ph);
        float chest = smoothstep(0.55 * anim.x, anim.x, p.y);  // the upper body rises, the feet stay put
        p.y += 0.008 * breath * chest;
        p.x += 0.02 * sin(t * 0.45 + ph * 1.7) * clamp(p.y / 1.7, 0.0, 1.0);
        if (anim.z > 0.5) {{
            // Now and then the head turns to glance back over the shoulder at the patient.
            vec3 cam = u_cam.xyz - i_group.xyz;
            float c = cos(i_group.w), s = sin(i_group.w);
            vec3 lc = vec3(c * cam.x - s * cam.z, cam.y, s * cam.x + c * cam.z);
            float want = clamp(atan(-lc.x, -lc.z), -1.35, 1.35);
            float glance = smoothstep(0.55, 0.8, sin(t * 0.33 + ph * 2.1)) ;
            float yaw = want * glance + 0.15 * sin(t * 0.21 + ph);
            vec3 q = p - vec3(0.0, anim.x, 0.0);
            float cy = cos(yaw), sy = sin(yaw);
            q = vec3(cy * q.x + sy * q.z, q.y, -sy * q.x + cy * q.z);
            n = vec3(cy * n.x + sy * n.z, n.y, -sy * n.x + cy * n.z);
            p = q + vec3(0.0, anim.x, 0.0);
        }}
    }}
}}
""",
    fragment=f"""
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {{
    if (pattern == {STEEL:.1f}) {{  // brushed steel: fine vertical streaks, a seam every 0.6 m
        float along = abs(local.x) > abs(local.z) ? world.x : world.z;
        float streak = hash(vec2(floor(along * 420.0), floor(world.y * 3.0)));
        float seam = step(0.985, fract(along / 0.6 + 0.5)) + step(0.99, fract(world.y / 1.2));
        base *= (0.86 + 0.18 * streak) * (1.0 - 0.45 * min(seam, 1.0));
        spec_k = 0.55;
        shininess = 36.0;
        return true;
    }}
    if (pattern == {STUDDED:.1f}) {{  // studded rubber floor
        vec2 g = fract(world.xz * 9.0) - 0.5;
        base *= length(g) < 0.22 ? 1.35 : 0.9 + 0.08 * hash(floor(world.xz * 60.0));
        spec_k = 0.08;
        return true;
    }}
    if (pattern == {CONCRETE:.1f}) {{
        base *= 0.75 + 0.35 * hash(floor(world.xy * 40.0)) * hash(floor(world.xy * 5.0));
        return true;
    }}
    return false;
}}
""",
)

EYE_M = 1.65
BACK_GAP_M = 0.35  # from the patient's feet to the back wall (less in a tiny car)
WALL_M = 0.06
SPEED_MPS = 1.5  # lift_moving 1
FLOOR_M = 3.2  # storey height: floors counted and shaft bands
DOOR_MAX_H_M = 2.1
STEEL_RGB = (0.62, 0.63, 0.65)
ALARM_RGB = (0.95, 0.75, 0.1)


def _car_frame(d: Mapping[str, float]) -> tuple[float, float, float, float, float, float]:
    """(half width, back z, door z, ceiling y, door width, door height) of the car for these dials."""
    w = float(np.clip(d["width_m"], 0.9, 3.5))
    depth = float(np.clip(d["depth_m"], 0.9, 3.5))
    c = float(np.clip(d["ceiling_m"], 1.85, 3.2))
    back = min(BACK_GAP_M, depth * 0.3)
    door_z = back - depth
    door_w = float(np.clip(0.55 * w, 0.7, 1.8))
    door_h = min(DOOR_MAX_H_M, c - 0.12)
    return w / 2, back, door_z, c, door_w, door_h


def _lobby(door_z: float, door_w: float, door_h: float) -> InstanceSet:
    """The bright lift lobby beyond the doors while the car is parked (seen through the doorway)."""
    s = InstanceSet()
    z0 = door_z - 0.1  # the landing wall, right behind the car doors
    far = z0 - 7.0
    zc = (z0 + far) / 2
    s.add("cube", (0, -0.05, zc), (12, 0.1, 7.0), (0.82, 0.8, 0.76), pattern=PAVING)
    s.add("cube", (0, 3.05, zc), (12, 0.1, 7.0), (0.9, 0.9, 0.88))
    s.add("cube", (0, 1.5, far - 0.05), (12, 3.0, 0.1), (0.78, 0.72, 0.6), emissive=0.15)
    s.add("cube", [(-6.05, 1.5, zc), (6.05, 1.5, zc)], (0.1, 3.0, 7.0), (0.82, 0.78, 0.68), emissive=0.15)
    # Ceiling lights, a bench, a plant and a framed floor sign on the far wall.
    s.add("cube", [(-2.5, 2.98, zc + 1.5), (2.5, 2.98, zc + 1.5), (0, 2.98, zc - 1.5)], (1.2, 0.04, 0.3),
          (1.0, 0.98, 0.92), emissive=1.0)
    s.add("cube", (1.8, 0.45, far + 0.4), (2.0, 0.08, 0.5), (0.55, 0.38, 0.22), pattern=WOOD)
    s.add("cube", [(1.0, 0.22, far + 0.4), (2.6, 0.22, far + 0.4)], (0.08, 0.44, 0.45), (0.2, 0.2, 0.2))
    s.add("cylinder", (-2.2, 0.25, far + 0.6), (0.5, 0.5, 0.5), (0.55, 0.35, 0.25))
    s.add("sphere", (-2.2, 0.95, far + 0.6), (0.9, 1.1, 0.9), (0.18, 0.4, 0.15), pattern=GRASS)
    s.add("cube", (0.0, 1.9, far + 0.02), (1.0, 0.6, 0.02), (0.15, 0.3, 0.55), emissive=0.2)
    s.add("cube", (0.0, 1.9, far + 0.04), (0.3, 0.36, 0.02), (0.95, 0.95, 0.95), emissive=0.3)
    # The landing wall around the opening (stone), with the landing's call button beside it.
    side = 6.0 - door_w / 2
    stone = (0.7, 0.66, 0.6)
    s.add("cube", [(-(door_w / 2 + side / 2), 1.5, z0), (door_w / 2 + side / 2, 1.5, z0)], (side, 3.0, 0.1), stone)
    s.add("cube", (0, (door_h + 3.0) / 2, z0), (door_w, 3.0 - door_h, 0.1), stone)
    s.add("cylinder", (door_w / 2 + 0.35, 1.1, z0 + 0.06), (0.06, 0.02, 0.06), (1.0, 0.6, 0.2), emissive=0.6,
          quat=axis_quat((1, 0, 0), math.pi / 2))
    return s


def _shaft(door_z: float, half_w: float, speed_mps: float) -> InstanceSet:
    """The shaft wall beyond the doors between floors, with bands (landing sills, beams) sliding past."""
    s = InstanceSet()
    z = door_z - 0.3
    s.add("cube", (0, 1.5, z - 0.05), (2 * half_w + 3.0, 8.0, 0.1), (0.36, 0.35, 0.33), pattern=CONCRETE)
    # Two bands per storey (a landing sill and a beam); env_vertex slides them down and wraps them. At t = 0,
    # and for good once the car stalls, the sill sits across the door windows: the car is between floors.
    ys = np.array([0.0, 1.1]) + FLOOR_M
    n = len(ys)
    anim = np.stack([np.full(n, FLOOR_M), np.full(n, speed_mps), np.full(n, 1.8), np.full(n, SHAFT)], 1)
    s.add("cube", np.stack([np.zeros(n), ys, np.full(n, z + 0.05)], 1), [(2 * half_w + 3.0, 0.18, 0.12),
          (2 * half_w + 3.0, 0.06, 0.05)], [(0.55, 0.55, 0.57), (0.2, 0.2, 0.2)], anim=anim)
    return s


def _digit_segments(cx: float, cy: float, z: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and scales of the 7 segments (a..g) of one digit of height ``h`` centred at (cx, cy), facing +z."""
    w = h * 0.55
    t = h * 0.13
    off = np.array([
        (cx, cy + h / 2, z), (cx + w / 2, cy + h / 4, z), (cx + w / 2, cy - h / 4, z), (cx, cy - h / 2, z),
        (cx - w / 2, cy - h / 4, z), (cx - w / 2, cy + h / 4, z), (cx, cy, z)])
    horiz = (w, t, 0.01)
    vert = (t, h / 2, 0.01)
    scale = np.array([horiz, vert, vert, horiz, vert, vert, horiz])
    return off, scale


def _indicator(s: InstanceSet, y: float, z: float, h: float, moving: float, stalled: float) -> None:
    """The floor indicator above the doors: two seven-segment digits and an up arrow, on a black panel."""
    dh = min(0.15, h * 0.75)
    s.add("cube", (0, y, z + 0.005), (dh * 2.6, dh * 1.3, 0.01), (0.02, 0.02, 0.02))
    floors_per_s = SPEED_MPS * moving * (1.0 - stalled) / FLOOR_M
    first = (7.0 if moving > 0.0 or stalled > 0.0 else 0.0) + (0.5 if stalled >= 0.5 else 0.0)
    offs, scales = [], []
    for cx in (-dh * 0.45, dh * 0.3):
        off, scale = _digit_segments(cx, y, z + 0.012, dh * 0.8)
        offs.append(off)
        scales.append(scale)
    anim = np.stack([np.concatenate([np.arange(7), 8 + np.arange(7)]), np.full(14, floors_per_s),
                     np.full(14, first), np.full(14, SEGMENT)], 1)
    s.add("cube", np.concatenate(offs), np.concatenate(scales), (1.0, 0.35, 0.08), emissive=1.0, anim=anim)
    # The arrow: a small cone pointing up, lit (pulsing) while travelling.
    s.add("cone", (dh * 1.0, y, z + 0.02), (dh * 0.35, dh * 0.45, 0.01), (1.0, 0.35, 0.08), emissive=1.0,
          anim=(8 + 7, floors_per_s, first, SEGMENT))


def _people(s: InstanceSet, count: int, hw: float, back: float, door_z: float, ceiling: float) -> None:
    """Up to four strangers standing in the car facing the doors (seeded looks; breathing on the GPU)."""
    if count <= 0:
        return
    rng = np.random.default_rng(21)
    front = door_z + 0.28
    slots = np.array([(-0.27, front), (0.27, front + 0.05), (-1.0, -0.1), (1.0, 0.04)])
    slots[:, 0] *= np.where(np.abs(slots[:, 0]) < 0.5, 2 * hw, 1.0)
    slots[2:, 0] = np.sign(slots[2:, 0]) * (hw - 0.22)
    slots[:, 0] = np.clip(slots[:, 0], -(hw - 0.2), hw - 0.2)
    slots[:, 1] = np.clip(slots[:, 1], door_z + 0.18, back - 0.16)
    heights = np.array([1.0, 0.94, 1.04, 0.97])
    shirts = np.array([(0.2, 0.25, 0.4), (0.55, 0.15, 0.12), (0.3, 0.32, 0.28), (0.75, 0.7, 0.6)])
    trousers = np.array([(0.12, 0.12, 0.15), (0.2, 0.2, 0.25), (0.35, 0.3, 0.25), (0.1, 0.1, 0.1)])
    skins = np.array([(0.85, 0.66, 0.52), (0.55, 0.38, 0.27), (0.9, 0.72, 0.6), (0.68, 0.5, 0.36)])
    hairs = np.array([(0.12, 0.08, 0.05), (0.05, 0.04, 0.04), (0.45, 0.3, 0.15), (0.5, 0.5, 0.5)])
    for i in range(min(count, 4)):
        k = min(heights[i], (ceiling - 0.06) / 1.79)
        x, z = slots[i]
        yaw = float(rng.uniform(-0.15, 0.15))
        group = (x, 0.0, z, yaw)
        ph = float(rng.uniform(0, 6.28))
        body = (1.45 * k, ph, 0.0, PERSON)
        head = (1.55 * k, ph, 1.0, PERSON)
        s.add("cylinder", [(-0.1 * k, 0.425 * k, 0), (0.1 * k, 0.425 * k, 0)], (0.15 * k, 0.85 * k, 0.15 * k),
              trousers[i], group=group, anim=body)
        s.add("cylinder", (0, 1.16 * k, 0), (0.42 * k, 0.62 * k, 0.26 * k), shirts[i], group=group, anim=body)
        s.add("sphere", (0, 1.44 * k, 0), (0.48 * k, 0.2 * k, 0.28 * k), shirts[i], group=group, anim=body)
        s.add("cylinder", [(-0.25 * k, 1.15 * k, 0.02), (0.25 * k, 1.15 * k, 0.02)], (0.1 * k, 0.6 * k, 0.11 * k),
              shirts[i] * 0.9, group=group, anim=body)
        s.add("cylinder", (0, 1.53 * k, 0), (0.11 * k, 0.14 * k, 0.11 * k), skins[i], group=group, anim=head)
        s.add("sphere", (0, 1.67 * k, 0), (0.19 * k, 0.23 * k, 0.21 * k), skins[i], group=group, anim=head)
        s.add("sphere", (0, 1.735 * k, 0.02 * k), (0.205 * k, 0.15 * k, 0.22 * k), hairs[i], group=group,
              anim=head)
        s.add("cube", [(-0.045 * k, 1.69 * k, -0.1 * k), (0.045 * k, 1.69 * k, -0.1 * k)], (0.026, 0.014, 0.02),
              (0.12, 0.08, 0.06), group=group, anim=head)
        s.add("cube", (0, 1.65 * k, -0.11 * k), (0.035, 0.06, 0.04), skins[i] * 0.95, group=group, anim=head)


def _look(light: float, stalled: float) -> SceneLook:
    """Light from the ceiling (the 'sun' points straight up, tilted towards the patient), and ambient bounce."""
    emergency = np.array((0.045, 0.025, 0.008)) * stalled
    ambient = np.array((0.62, 0.62, 0.6)) * light + emergency + 0.006
    return SceneLook(
        sun_dir=(0.1, 1.0, 0.45),
        sun_rgb=tuple(float(c) for c in np.array((1.0, 0.97, 0.9)) * 0.6 * light),
        sky_zenith_rgb=(0.1, 0.1, 0.1),
        sky_horizon_rgb=(0.1, 0.1, 0.1),
        ground_ambient_rgb=tuple(float(c) for c in ambient),
        fog_rgb=(0.0, 0.0, 0.0),
        fog_density=0.0,
        indoor=True,
    )


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The lift car for one setting of the dials, built around the patient's fixed standing point."""
    hw, back, dz, c, dw, dh = _car_frame(d)
    light = float(np.clip(d["light_level"], 0.05, 1.0))
    door = float(np.clip(d["door_open_fraction"], 0.0, 1.0))
    moving = float(np.clip(d["lift_moving"], 0.0, 1.0))
    stalled = float(np.clip(d["stalled"], 0.0, 1.0))
    occupants = round(float(np.clip(d["occupants"], 0.0, 4.0)))
    depth = back - dz
    zc = (back + dz) / 2
    s = InstanceSet()
    # Outside the doors: the lobby while parked, the shaft wall once the car has left the floor.
    if moving > 0.0 or stalled > 0.0:
        s.include(_shaft(dz, hw, SPEED_MPS * moving * (1.0 - stalled)))
    else:
        s.include(_lobby(dz, dw, dh))
    steel = STEEL_RGB
    # Floor, ceiling, back and side walls.
    s.add("cube", (0, -0.03, zc), (2 * hw, 0.06, depth), (0.22, 0.22, 0.23), pattern=STUDDED)
    s.add("cube", (0, c + WALL_M / 2, zc), (2 * hw + 2 * WALL_M, WALL_M, depth + WALL_M), (0.72, 0.72, 0.7))
    s.add("cube", (0, c / 2, back + WALL_M / 2), (2 * hw + 2 * WALL_M, c, WALL_M), steel, pattern=STEEL)
    s.add("cube", [(-hw - WALL_M / 2, c / 2, zc), (hw + WALL_M / 2, c / 2, zc)], (WALL_M, c, depth), steel,
          pattern=STEEL)
    # A dark mirror on the back wall and a handrail around the back and sides.
    s.add("cube", (0, min(1.45, c - 0.45), back - 0.005), (min(2 * hw - 0.3, 1.2), min(0.7, c - 1.2), 0.01),
          (0.18, 0.2, 0.22))
    rail_y = 0.92
    s.add("cylinder", (0, rail_y, back - 0.06), (0.04, 2 * hw - 0.2, 0.04), (0.75, 0.75, 0.77),
          quat=axis_quat((0, 0, 1), math.pi / 2))
    s.add("cylinder", [(-hw + 0.06, rail_y, zc), (hw - 0.06, rail_y, zc)], (0.04, max(depth - 0.3, 0.2), 0.04),
          (0.75, 0.75, 0.77), quat=axis_quat((1, 0, 0), math.pi / 2))
    # Ceiling: round downlights (flickering when stalled) over their dark rims, and the amber emergency lamp
    # above the doors.
    nx = 1 if hw < 0.8 else 2
    nz = 1 if depth < 1.6 else 2
    lx = (np.arange(nx) - (nx - 1) / 2) * hw
    lz = zc + (np.arange(nz) - (nz - 1) / 2) * depth / 2
    spots = np.stack([np.repeat(lx, nz), np.full(nx * nz, c), np.tile(lz, nx)], 1)
    s.add("cylinder", spots - (0, 0.006, 0), (0.14, 0.012, 0.14), (0.35, 0.35, 0.36))
    lamp = 0.2 + 0.8 * light
    s.add("cylinder", spots - (0, 0.014, 0), (0.1, 0.012, 0.1), (1.0, 0.96, 0.86), emissive=lamp,
          anim=(stalled, 0, 0, FLICKER))
    s.add("cube", (-hw * 0.55, c - 0.02, dz + 0.08), (0.12, 0.03, 0.06),
          (1.0, 0.55, 0.12) if stalled > 0 else (0.5, 0.5, 0.5), emissive=1.0 * stalled)
    # Front wall: two jambs beside the doorway and the header above it.
    jamb = max(hw - dw / 2, 0.02)
    s.add("cube", [(-(dw / 2 + jamb / 2), c / 2, dz), (dw / 2 + jamb / 2, c / 2, dz)], (jamb, c, WALL_M), steel,
          pattern=STEEL)
    s.add("cube", (0, (dh + c) / 2, dz), (dw, c - dh, WALL_M), steel, pattern=STEEL)
    # The floor indicator on the header (or just above the doors when the header is thin).
    _indicator(s, (dh + c) / 2, dz + WALL_M / 2, c - dh, moving, stalled)
    # Car doors: two panels meeting in the middle, sliding behind the jambs; each with a narrow window.
    slide = door * dw / 2
    door_rgb = (0.5, 0.52, 0.55)
    pz = dz - WALL_M / 2 - 0.03
    win_w, win_y0, win_y1 = 0.1, min(1.0, dh - 0.5), min(1.8, dh - 0.15)
    for side in (-1.0, 1.0):
        cx = side * (dw / 4 + slide)
        pw = dw / 2
        wx = cx - side * pw * 0.2  # the window nearer the meeting edge
        left, right = cx - pw / 2, cx + pw / 2
        s.add("cube", [((left + wx - win_w / 2) / 2, dh / 2, pz), ((wx + win_w / 2 + right) / 2, dh / 2, pz)],
              [((wx - win_w / 2) - left, dh, 0.04), (right - (wx + win_w / 2), dh, 0.04)], door_rgb, pattern=STEEL)
        s.add("cube", [(wx, win_y0 / 2, pz), (wx, (win_y1 + dh) / 2, pz)],
              [(win_w, win_y0, 0.04), (win_w, dh - win_y1, 0.04)], door_rgb, pattern=STEEL)
        s.add("cube", (wx, (win_y0 + win_y1) / 2, pz), (win_w, win_y1 - win_y0, 0.01), (0.6, 0.7, 0.75),
              pattern=GLASS, alpha=0.15)
    # Button panel on the right wall near the doors: a column of buttons, some lit, and the alarm bell.
    px = hw - 0.004
    pzc = dz + min(0.3, depth * 0.3)
    s.add("cube", (px, 1.2, pzc), (0.01, 0.6, 0.2), (0.75, 0.76, 0.78), pattern=STEEL)
    by = np.linspace(1.42, 1.02, 6)
    lit = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    s.add("cylinder", np.stack([np.full(6, px - 0.008), by, np.full(6, pzc + 0.04)], 1), (0.045, 0.012, 0.045),
          np.where(lit[:, None] > 0, [[1.0, 0.55, 0.1]], [[0.55, 0.56, 0.58]]), emissive=lit * 0.9,
          quat=axis_quat((0, 0, 1), math.pi / 2))
    s.add("cylinder", np.stack([np.full(6, px - 0.008), by, np.full(6, pzc - 0.04)], 1), (0.045, 0.012, 0.045),
          (0.55, 0.56, 0.58), quat=axis_quat((0, 0, 1), math.pi / 2))
    s.add("cylinder", (px - 0.01, 0.98, pzc), (0.06, 0.014, 0.06), ALARM_RGB, emissive=0.8 * stalled,
          quat=axis_quat((0, 0, 1), math.pi / 2))
    _people(s, occupants, hw, back, dz, c)
    # Default view: ahead at the doors, tilted up a little to take in the ceiling and the indicator; the
    # wide field of view shows both side walls, so how close they are is what the frame is about.
    pitch = math.atan2(c - EYE_M, max(-dz, 0.5)) * 0.25
    return s.build(
        _look(light, stalled),
        (0.0, 0.0, 0.0),
        gaze_pitch_rad=pitch,
        view_fovy_deg=95.0,
        shadow_center=(0.0, -1000.0, 0.0),  # no shadow map inside the closed car: ceiling light and bounce only
        shadow_radius_m=1.0,
    )


class Enclosed(Environment):
    """A lift that narrows, closes, climbs, dims, stalls and fills with strangers around a patient who never moves."""

    name = "enclosed"
    title = "Enclosed spaces: lift"
    kind = "phobia"
    targets = ("claustrophobia",)
    dials = DIALS
    levels = tuple(Level(title, description, dials) for title, description, dials in _LEVELS)
    shader = SHADER

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = Enclosed()
