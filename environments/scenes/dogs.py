"""``dogs``: a city park where dogs appear, from a poster of a dog to two large dogs jumping and barking at you.

The hierarchy follows how dog-phobic patients and clinicians grade exposure
(a picture first, then a real dog far away behind a fence with its owner,
nearer, wagging and sniffing, on the lead on your path, larger, barking, off
the lead, running towards you, several, and finally large dogs jumping up and
barking at arm's length). Every fear-relevant dial only ever moves towards
fear from one level to the next, so a therapist can read the hierarchy from
the dials alone.

Every dog is a torso, chest, rump, neck, head with muzzle, nose, eyes and ears,
four legs with paws, a collar and a tail (instanced parts of one template,
scaled by the shoulder height). What a dog does is animated on the GPU from the
frame time in this environment's own vertex shader: the tail wags (wider and
faster with activity), the legs trot as the dog moves, the head goes down to
sniff, the jaw snaps open with each bark, and an excited dog rears up and
jumps. Nothing is walked in Python per frame.
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
from environments.scene_build import (
    GRASS,
    WOOD,
    InstanceSet,
    SceneBuild,
    SceneLook,
    yaw_quat,
)

# This environment's own materials (shaded by SHADER below, nowhere else).
FUR = ENV_MATERIAL_BASE  # short coat: fine streaks, matt
GLOSSY = ENV_MATERIAL_BASE + 1  # eyes and nose: wet highlights
POSTER = ENV_MATERIAL_BASE + 2  # the poster's paper (a photo print, faint grain)
GRAVEL = ENV_MATERIAL_BASE + 3  # the park path

# Part codes in anim.x (integer part; the fraction is half the dog's shoulder height in metres).
STATIC, FRONT_LEG, HIND_LEG, TAIL, HEAD, JAW = range(6)

# The dog template at shoulder height 1, facing -Z, feet on y = 0 (pivots are used by the shader).
NECK_Y, NECK_Z = 0.86, -0.42  # the neck and head turn and dip about this point (the base of the neck)
HIND_Z = 0.47  # hind feet: an excited dog rears up about them
FRONT_Z = -0.45
SHOULDER_Y = 0.82  # leg pivots
DOG_LENGTH = 1.6  # nose to tail tip, in shoulder heights
DOG_TOP = 1.6  # ear tips, in shoulder heights

DIALS = (
    Dial("distance_m", "m", 0.5, 30.0, 10.0, True, "floor distance from the feet to the nearest dog "
         "(where a running one stops)", fear_rises_with_value=False),
    Dial("dog_size_m", "m", 0.25, 0.85, 0.45, True, "shoulder height of the largest dog (0.25 terrier .. "
         "0.85 great dane)"),
    Dial("activity", "", 0.0, 1.0, 0.0, True, "0 stands still, 0.15 wags, 0.25 sniffs, 0.5 walks about, "
         "0.75 trots, 1 jumps up excitedly"),
    Dial("barking", "", 0.0, 1.0, 0.0, True, "share of the time the dogs bark (jaw snapping, head jerking)"),
    Dial("leash", "", 0.0, 1.0, 1.0, True, "1 each dog is on a short lead held by its owner, 0 off the lead",
         fear_rises_with_value=False),
    Dial("fence", "", 0.0, 1.0, 0.0, True, "between you and the dogs: 1 a tall metal railing, 0.5 a low "
         "picket fence, 0 nothing", fear_rises_with_value=False),
    Dial("count", "", 1.0, 3.0, 1.0, True, "how many dogs (the nearest is the largest; others trot around it)"),
    Dial("approach", "", 0.0, 1.0, 0.0, True, "0 the dogs stay where they are, 1 they run towards you in bursts "
         "and back (off the lead only)"),
    Dial("picture", "", 0.0, 1.0, 0.0, True, "1 shows only a photo of a dog on the notice board beside the path",
         fear_rises_with_value=False),
    Dial("coat", "", 0.0, 1.0, 0.45, False, "coat colour of the nearest dog: 0 cream, 0.45 tan, 1 black "
         "(some patients fear dark dogs more)"),
)


def _lv(distance_m, dog_size_m, activity, barking=0.0, leash=1.0, fence=0.0, count=1, approach=0.0, picture=0.0):
    return dict(distance_m=distance_m, dog_size_m=dog_size_m, activity=activity, barking=barking, leash=leash,
                fence=fence, count=count, approach=approach, picture=picture)


_LEVELS: list[tuple[str, str, dict[str, float]]] = [
    ("Photo of a dog", "A poster with a photo of a medium-sized dog on the notice board beside the path, 4 m ahead; "
     "there is no real dog in the park.",
     _lv(30.0, 0.4, 0.0, fence=1.0, picture=1.0)),
    ("Dog behind a railing, 25 m", "A medium dog (40 cm at the shoulder) stands quietly on the lead beside its "
     "owner behind a tall metal railing, 25 m down the path.",
     _lv(25.0, 0.4, 0.0, fence=1.0)),
    ("Wagging its tail, 15 m", "The same dog, still behind the tall railing, now 15 m away, wags its tail.",
     _lv(15.0, 0.4, 0.15, fence=1.0)),
    ("Sniffing behind a low fence, 9 m", "Behind a knee-high picket fence 9 m away the dog, on its lead, sniffs "
     "the grass and wags.",
     _lv(9.0, 0.4, 0.25, fence=0.5)),
    ("On the lead on your path, 5 m", "Nothing between you now: the owner holds the dog on a short lead on the "
     "path 5 m ahead; it sniffs around and wags.",
     _lv(5.0, 0.4, 0.3)),
    ("On the lead, 2.5 m", "The dog on its lead stands 2.5 m in front of you, looking around and wagging.",
     _lv(2.5, 0.4, 0.35)),
    ("Larger dog on the lead, barks now and then", "A larger dog (60 cm at the shoulder, shepherd-like) on the "
     "lead 2.5 m away; it looks at you and barks now and then.",
     _lv(2.5, 0.6, 0.4, barking=0.2)),
    ("Off the lead, walking around, 2 m", "The owner has let the larger dog off the lead: it walks around on "
     "the grass, passing 2 m in front of you, and barks now and then.",
     _lv(2.0, 0.6, 0.5, barking=0.2, leash=0.0)),
    ("Large dog barking, 1.5 m", "A large dog (70 cm) off the lead trots around 1.5 m in front of you and barks "
     "often.",
     _lv(1.5, 0.7, 0.6, barking=0.5, leash=0.0)),
    ("Runs towards you", "The large dog runs towards you in bursts, barking, stops 1.2 m from your feet, turns "
     "and runs back.",
     _lv(1.2, 0.7, 0.75, barking=0.6, leash=0.0, approach=1.0)),
    ("Two large dogs, 1 m", "Two large dogs off the lead run up to you, barking, and stop 1 m away.",
     _lv(1.0, 0.75, 0.85, barking=0.8, leash=0.0, count=2, approach=1.0)),
    ("Jumping up and barking at arm's length", "Three dogs off the lead, the nearest a very large black-and-tan "
     "dog (85 cm at the shoulder), run at you, jump up and bark without pause 60 cm from your feet.",
     dict(_lv(0.6, 0.85, 1.0, barking=1.0, leash=0.0, count=3, approach=1.0), coat=0.8)),
]


SHADER = EnvironmentShader(
    vertex=f"""
vec3 dog_rot_x(vec3 v, float a) {{ float c = cos(a), s = sin(a); return vec3(v.x, c * v.y - s * v.z, s * v.y + c * v.z); }}
vec3 dog_rot_y(vec3 v, float a) {{ float c = cos(a), s = sin(a); return vec3(c * v.x + s * v.z, v.y, -s * v.x + c * v.z); }}

void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {{
    // anim = (part code + shoulder height / 2, pivot y, pivot z, round(activity * 100) + barking share).
    float code = floor(anim.x + 1e-4);
    if (code < 0.5) return;
    float sh = fract(anim.x + 1e-4) * 2.0;
    float act = floor(anim.w + 1e-4) / 100.0;
    float bark = fract(anim.w + 1e-4);
    float seed = fract(sin(dot(i_group.xz, vec2(12.9898, 78.233))) * 43758.5453) * 6.2831853;
    float walking = travelled > 0.0 ? 1.0 : 0.0;
    // Barks: bursts of snaps (about 1.3 a second), for the ``bark`` share of the time.
    float gate = bark > 0.0 ? step(1.0 - bark, fract(t * 0.21 + seed * 0.37)) : 0.0;
    float snap = gate * pow(max(sin(t * 8.0 + seed), 0.0), 3.0);
    vec3 pivot = vec3(0.0, anim.y, anim.z);
    if (code == {FRONT_LEG:.1f} || code == {HIND_LEG:.1f}) {{
        // Trot: diagonal pairs swing together; an excited dog standing still paws and prances.
        float gp = travelled / (1.3 * sh) * 6.2831853 + seed;
        float pair = mod((p.x > 0.0 ? 1.0 : 0.0) + (code == {FRONT_LEG:.1f} ? 1.0 : 0.0), 2.0);
        float ph = gp + 3.14159265 * pair;
        float prance = (1.0 - walking) * smoothstep(0.6, 0.9, act) * 0.3 * max(sin(t * 7.0 + 3.14159265 * pair + seed), 0.0);
        float a = walking * 0.5 * sin(ph) + prance;
        p = dog_rot_x(p - pivot, a) + pivot;
        n = dog_rot_x(n, a);
    }} else if (code == {TAIL:.1f}) {{
        // Wag about the tail's root: wider and faster the livelier the dog; a still dog's tail sways gently.
        float amp = 0.12 + 0.7 * clamp(act * 1.6, 0.0, 1.0);
        float w = amp * sin(t * (3.0 + 11.0 * clamp(act * 1.5, 0.0, 1.0)) + seed);
        p = dog_rot_y(p - pivot, w) + pivot;
        n = dog_rot_y(n, w);
    }} else if (code == {HEAD:.1f} || code == {JAW:.1f}) {{
        if (code == {JAW:.1f}) {{  // the lower jaw drops open with each bark
            p = dog_rot_x(p - pivot, -0.55 * snap) + pivot;
            n = dog_rot_x(n, -0.55 * snap);
        }}
        // Sniffing: nose down to the grass, bobbing; otherwise the head looks around slowly.
        float sniff = smoothstep(0.17, 0.25, act) * (1.0 - smoothstep(0.32, 0.45, act)) * (1.0 - gate);
        float down = sniff * (0.7 + 0.08 * sin(t * 12.0 + seed)) - 0.2 * snap;
        float look = (1.0 - sniff) * (0.3 * sin(t * 0.6 + seed) + 0.1 * sin(t * 1.7 + seed * 2.0)) * (1.0 - gate);
        vec3 neck = vec3(0.0, {NECK_Y} * sh, {NECK_Z} * sh);
        p = dog_rot_y(dog_rot_x(p - neck, -down), look) + neck;
        n = dog_rot_y(dog_rot_x(n, -down), look);
    }}
    // An excited dog rears up about its hind feet and jumps; a barking one lunges a little.
    float jump = smoothstep(0.8, 1.0, act);
    float hop = pow(max(sin(t * 4.5 + seed), 0.0), 1.5) * jump;
    vec3 hind = vec3(0.0, 0.0, {HIND_Z} * sh);
    p = dog_rot_x(p - hind, 0.6 * hop) + hind;
    n = dog_rot_x(n, 0.6 * hop);
    p.y += 0.12 * sh * hop;
    p.z -= 0.04 * sh * snap;
}}
""",
    fragment=f"""
bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k, inout float shininess) {{
    if (pattern == {FUR:.1f}) {{  // short coat: streaks along the body, matt with a soft sheen
        float streak = hash(floor(local.xz * vec2(260.0, 60.0)) + floor(local.y * 260.0) * 7.0);
        base *= 0.86 + 0.24 * streak;
        spec_k = 0.08;
        shininess = 12.0;
        return true;
    }}
    if (pattern == {GLOSSY:.1f}) {{
        spec_k = 0.9;
        shininess = 90.0;
        return true;
    }}
    if (pattern == {POSTER:.1f}) {{
        base *= 0.95 + 0.05 * hash(floor(local.xy * 300.0));
        return true;
    }}
    if (pattern == {GRAVEL:.1f}) {{
        base *= 0.8 + 0.3 * hash(floor(world.xz * 40.0)) * (0.7 + 0.3 * hash(floor(world.xz * 3.0)));
        return true;
    }}
    return false;
}}
""",
)

LOOK = SceneLook(
    sun_dir=(0.55, 0.62, 0.35),  # late-morning sun from the right, behind the patient's shoulder
    sun_rgb=(1.05, 0.98, 0.88),
    sky_zenith_rgb=(0.22, 0.42, 0.8),
    sky_horizon_rgb=(0.7, 0.8, 0.9),
    ground_ambient_rgb=(0.3, 0.3, 0.26),
    fog_rgb=(0.72, 0.8, 0.88),
    fog_density=0.006,
)

STANDING_EYE_M = 1.65
PATH_HALF_W = 1.3
BOARD_Z = -3.5  # the notice board with the poster, beside the path on the left
BOARD_X = -2.6
BOARD_Y = 1.45
COAT_CREAM = np.array([0.82, 0.7, 0.5])
COAT_TAN = np.array([0.55, 0.33, 0.15])
COAT_BLACK = np.array([0.06, 0.05, 0.045])
SHIRTS = ((0.25, 0.4, 0.6), (0.6, 0.25, 0.2), (0.3, 0.5, 0.3))  # the owners' clothes


# ----------------------------------------------------------------------------- the park
@functools.lru_cache(maxsize=1)
def _park() -> InstanceSet:
    """Lawn, a gravel path ahead, trees, benches, a hedge and houses (seeded: every run shows the same park)."""
    rng = np.random.default_rng(21)
    s = InstanceSet()
    s.add("cube", (0, -0.5, 0), (1200, 1.0, 1200), (0.3, 0.46, 0.18), pattern=GRASS)
    s.add("cube", (0, 0.005, -40), (2 * PATH_HALF_W, 0.01, 90), (0.66, 0.6, 0.5), pattern=GRAVEL)
    # Path edging.
    s.add("cube", [(-PATH_HALF_W, 0.02, -40), (PATH_HALF_W, 0.02, -40)], (0.08, 0.04, 90), (0.5, 0.5, 0.48))
    # Trees either side of the path, swaying in the breeze.
    n = 26
    side = np.where(np.arange(n) % 2 == 0, -1.0, 1.0)
    tz = -np.repeat(np.linspace(4, 75, n // 2), 2)[:n] + rng.uniform(-2, 2, n)
    tx = side * rng.uniform(5.5, 12.0, n)
    th = rng.uniform(6, 10, n)
    s.add("cylinder", np.stack([tx, th / 4, tz], 1), np.stack([np.full(n, 0.35), th / 2, np.full(n, 0.35)], 1),
          (0.3, 0.22, 0.15))
    s.add("sphere", np.stack([tx, th * 0.7, tz], 1), np.stack([th * 0.6, th * 0.55, th * 0.6], 1),
          (0.17, 0.33, 0.12), pattern=GRASS,
          motion=np.stack([np.zeros(n)] * 2 + [rng.uniform(0, 6, n), np.full(n, 0.35)], 1))
    # Benches beside the path.
    for bz in (-7.0, -19.0, -33.0):
        s.add("cube", (-2.3, 0.45, bz), (0.45, 0.06, 1.6), (0.5, 0.35, 0.2), pattern=WOOD)
        s.add("cube", (-2.52, 0.75, bz), (0.06, 0.5, 1.6), (0.5, 0.35, 0.2), pattern=WOOD)
        s.add("cube", [(-2.3, 0.22, bz - 0.7), (-2.3, 0.22, bz + 0.7)], (0.4, 0.44, 0.06), (0.2, 0.2, 0.2))
    # A hedge and houses closing the park at the far end.
    s.add("cube", (0, 1.0, -82), (120, 2.0, 2.0), (0.14, 0.3, 0.11), pattern=GRASS)
    hx = np.linspace(-60, 60, 9) + rng.uniform(-4, 4, 9)
    hh = rng.uniform(7, 14, 9)
    s.add("cube", np.stack([hx, hh / 2, np.full(9, -95.0)], 1), np.stack([rng.uniform(9, 13, 9), hh, np.full(9, 9.0)], 1),
          rng.uniform(0.6, 0.85, (9, 1)) * np.array([[1.0, 0.9, 0.8]]))
    s.add("cone", np.stack([hx, hh + 2.0, np.full(9, -95.0)], 1), np.stack([np.full(9, 12.0), np.full(9, 4.0), np.full(9, 12.0)], 1),
          (0.45, 0.2, 0.15))
    # A lamp post and a bin near the patient.
    s.add("cylinder", (1.9, 1.8, -1.5), (0.1, 3.6, 0.1), (0.15, 0.17, 0.16))
    s.add("sphere", (1.9, 3.65, -1.5), (0.35, 0.35, 0.35), (0.95, 0.93, 0.85), emissive=0.3)
    s.add("cylinder", (2.1, 0.4, -4.0), (0.45, 0.8, 0.45), (0.2, 0.3, 0.22))
    return s


# ----------------------------------------------------------------------------- dog geometry
def _quat_from_y(d: np.ndarray) -> np.ndarray:
    """Quaternions (x, y, z, w) turning +Y onto each unit row of ``d`` (never exactly -Y here)."""
    y = np.array([0.0, 1.0, 0.0])
    axis = np.cross(np.broadcast_to(y, d.shape), d)
    q = np.concatenate([axis, (1.0 + d @ y)[:, None]], axis=1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _segments(a, b, thick):
    """Cylinders from points ``a`` to ``b``: (offset, scale, quat) rows."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    v = b - a
    length = np.linalg.norm(v, axis=1)
    thick = np.broadcast_to(np.asarray(thick, float), length.shape)
    return (a + b) / 2, np.stack([thick, length, thick], 1), _quat_from_y(v / length[:, None])


# A part: mesh, offset, scale, quat, code, pivot (y, z), tone (scales the coat colour; < 0: fixed colour -tone
# index into _FIXED), material.
_FIXED = {1: (0.03, 0.025, 0.025), 2: (0.45, 0.08, 0.1), 3: (0.7, 0.1, 0.1), 4: (0.85, 0.82, 0.75)}


@functools.lru_cache(maxsize=4)
def _template(pointed_ears: bool) -> dict[str, tuple[np.ndarray, ...]]:
    """One dog of shoulder height 1 facing -Z, feet on y = 0: per mesh (offset, scale, quat, code, pivot, tone, mat).

    ``tone`` > 0 scales the coat colour (a darker saddle, a lighter muzzle);
    ``tone`` <= 0 picks a fixed colour (eyes, nose, mouth, collar). Cached.
    """
    rows: dict[str, list] = {"sphere": [], "cylinder": [], "cone": []}

    def add(mesh, off, scale, quat=(0, 0, 0, 1), code=STATIC, pivot=(0.0, 0.0), tone=1.0, mat=FUR):
        rows[mesh].append((np.asarray(off, float), np.asarray(scale, float), np.asarray(quat, float), code,
                           pivot, tone, mat))

    def seg(a, b, thick, **kw):
        o, sc, q = _segments(a, b, thick)
        add("cylinder", o[0], sc[0], q[0], **kw)

    # Body: chest, barrel, rump; a darker saddle on the back.
    add("sphere", (0, 0.74, -0.36), (0.48, 0.6, 0.56), tone=1.0)  # chest
    add("sphere", (0, 0.79, 0.0), (0.42, 0.44, 0.95), tone=0.95)  # barrel
    add("sphere", (0, 0.8, 0.38), (0.42, 0.44, 0.46), tone=0.92)  # rump
    add("sphere", (0, 0.9, 0.05), (0.36, 0.3, 0.85), tone=0.45)  # saddle
    # Neck, collar and head move together about the base of the neck.
    head = dict(code=HEAD, pivot=(NECK_Y, NECK_Z))
    seg((0, 0.86, -0.45), (0, 1.2, -0.72), 0.3, tone=1.0, **head)
    o, sc, q = _segments((0, 0.98, -0.53), (0, 1.03, -0.58), 0.33)
    add("cylinder", o[0], sc[0], q[0], tone=-3, mat=0, **head)
    add("sphere", (0, 1.3, -0.8), (0.36, 0.36, 0.42), tone=1.0, **head)  # skull
    seg((0, 1.26, -0.9), (0, 1.2, -1.2), 0.2, tone=0.8, **head)  # muzzle
    add("sphere", (0, 1.22, -1.2), (0.11, 0.09, 0.09), tone=-1, mat=GLOSSY, **head)  # nose
    add("sphere", (0, 1.15, -1.02), (0.14, 0.08, 0.2), tone=-2, mat=0, **head)  # mouth (shows when open)
    o, sc, q = _segments((0, 1.12, -0.9), (0, 1.11, -1.15), 0.12)
    add("cylinder", o[0], sc[0], q[0], code=JAW, pivot=(1.14, -0.88), tone=0.75)  # lower jaw
    for x in (-0.11, 0.11):  # eyes
        add("sphere", (x, 1.38, -0.97), (0.07, 0.07, 0.06), tone=-1, mat=GLOSSY, **head)
    if pointed_ears:  # upright triangular ears (shepherd-like)
        for x in (-0.12, 0.12):
            q = np.array([0.0, 0.0, math.sin(-math.copysign(0.18, x)), math.cos(0.18)])
            add("cone", (x, 1.55, -0.74), (0.16, 0.28, 0.08), q / np.linalg.norm(q), tone=0.6, **head)
    else:  # soft ears hanging beside the head (spaniel-like)
        for x in (-0.2, 0.2):
            q = np.array([0.0, 0.0, math.sin(math.copysign(0.12, x)), math.cos(0.12)])
            add("sphere", (x, 1.22, -0.76), (0.08, 0.34, 0.2), q / np.linalg.norm(q), tone=0.62, **head)
    # Legs: front pair straight, hind pair with a thigh; paws.
    for x in (-0.15, 0.15):
        fz, hz = FRONT_Z, HIND_Z
        seg((x, SHOULDER_Y, fz), (x, 0.06, fz - 0.02), 0.17, code=FRONT_LEG, pivot=(SHOULDER_Y, fz), tone=0.95)
        add("sphere", (x, 0.05, fz - 0.08), (0.16, 0.1, 0.22), code=FRONT_LEG, pivot=(SHOULDER_Y, fz), tone=0.85)
        add("sphere", (x, 0.62, hz - 0.02), (0.22, 0.42, 0.3), code=HIND_LEG, pivot=(SHOULDER_Y, hz), tone=0.9)
        seg((x, 0.5, hz + 0.1), (x, 0.06, hz + 0.02), 0.15, code=HIND_LEG, pivot=(SHOULDER_Y, hz), tone=0.95)
        add("sphere", (x, 0.05, hz - 0.04), (0.15, 0.1, 0.22), code=HIND_LEG, pivot=(SHOULDER_Y, hz), tone=0.85)
    # Tail: up and back from the rump, a bushier tip.
    root = (0, 0.95, 0.58)
    seg(root, (0, 1.25, 0.9), 0.1, code=TAIL, pivot=(root[1], root[2]), tone=0.8)
    seg((0, 1.25, 0.9), (0, 1.38, 1.02), 0.09, code=TAIL, pivot=(root[1], root[2]), tone=0.65)
    out = {}
    for mesh, parts in rows.items():
        if parts:
            off, scale, quat, code, pivot, tone, mat = zip(*parts)
            out[mesh] = (np.array(off), np.array(scale), np.array(quat), np.array(code, float),
                         np.array(pivot, float), np.array(tone, float), np.array(mat, float))
    return out


def _coat(value: float) -> np.ndarray:
    v = min(max(float(value), 0.0), 1.0)
    if v <= 0.45:
        return COAT_CREAM + (COAT_TAN - COAT_CREAM) * (v / 0.45)
    return COAT_TAN + (COAT_BLACK - COAT_TAN) * ((v - 0.45) / 0.55)


def add_dogs(s: InstanceSet, origin, yaw, shoulder_m, motion, coat_rgb, activity: float, barking: float, *,
             pointed_ears, mount=None) -> None:
    """Add ``len(origin)`` dogs in one vectorised call per mesh and ear style.

    Each dog is a group (origin, yaw, motion) of template parts scaled by its
    shoulder height; its parts carry their code and pivot for the vertex shader.
    ``mount`` = (yaw, centre, flatten) instead fixes one still dog in space,
    flattened across its width (the poster's photo).
    """
    origin = np.atleast_2d(np.asarray(origin, float))
    n = len(origin)
    yaw = np.broadcast_to(np.asarray(yaw, float), (n,))
    sh = np.broadcast_to(np.asarray(shoulder_m, float), (n,))
    motion = np.broadcast_to(np.asarray(motion, float), (n, 4))
    coat_rgb = np.broadcast_to(np.asarray(coat_rgb, float), (n, 3))
    ears = np.broadcast_to(np.asarray(pointed_ears, bool), (n,))
    behaviour = round(min(max(activity, 0.0), 1.0) * 100) + min(max(barking, 0.0), 0.99)
    for style in (False, True):
        idx = np.nonzero(ears == style)[0]
        if not len(idx):
            continue
        for mesh, (off, scale, quat, code, pivot, tone, mat) in _template(style).items():
            k = len(off)
            m = len(idx)
            sp = np.repeat(sh[idx], k)[:, None]
            o = np.tile(off, (m, 1)) * sp
            sc = np.tile(scale, (m, 1)) * sp
            q = np.tile(quat, (m, 1))
            tn = np.tile(tone, m)
            rgb = np.repeat(coat_rgb[idx], k, axis=0) * np.maximum(tn, 0.0)[:, None]
            for fixed, c in _FIXED.items():
                rgb[tn == -fixed] = c
            mats = np.tile(mat, m)
            if mount is not None:
                myaw, centre, flatten = mount
                o[:, 0] *= flatten
                sc[:, 0] *= flatten
                qy = yaw_quat(myaw)
                o = _rotate(qy, o) + centre
                q = _quat_mul(qy, q)
                group = np.zeros((len(o), 4))
                mo = np.zeros((len(o), 4))
                an = np.zeros((len(o), 4))
            else:
                group = np.repeat(np.concatenate([origin[idx], yaw[idx, None]], 1), k, axis=0)
                mo = np.repeat(motion[idx], k, axis=0)
                an = np.empty((len(o), 4))
                an[:, 0] = np.tile(code, m) + sp[:, 0] / 2.0
                an[:, 1:3] = np.tile(pivot, (m, 1)) * sp
                an[:, 3] = behaviour
            for pat in np.unique(mats):
                sel = mats == pat
                s.add(mesh, o[sel], sc[sel], rgb[sel], quat=q[sel], group=group[sel], motion=mo[sel],
                      pattern=float(pat), anim=an[sel])


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b of (x, y, z, w) quaternion rows."""
    shape = np.broadcast_shapes(a.shape, b.shape)
    ax, ay, az, aw = np.moveaxis(np.broadcast_to(a, shape), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.broadcast_to(b, shape), -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz], -1)


def _rotate(q, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (rows) by the unit quaternion ``q``."""
    q = np.asarray(q, float)
    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(np.broadcast_to(u, v.shape), np.cross(np.broadcast_to(u, v.shape), v) + w * v)


def _person(s: InstanceSet, x: float, z: float, yaw: float, shirt) -> np.ndarray:
    """A standing owner at (x, z) facing ``yaw``; returns the world position of the hand holding the lead."""
    fwd = np.array([-math.sin(yaw), 0.0, -math.cos(yaw)])
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    base = np.array([x, 0.0, z])
    legs = [base + right * sx * 0.11 + np.array([0, 0.45, 0]) for sx in (-1, 1)]
    s.add("cylinder", legs, (0.15, 0.9, 0.15), (0.2, 0.22, 0.3))
    s.add("cylinder", base + np.array([0, 1.2, 0]), (0.42, 0.62, 0.3), shirt, quat=yaw_quat(yaw), pattern=0)
    s.add("sphere", base + np.array([0, 1.63, 0]), (0.22, 0.26, 0.23), (0.78, 0.6, 0.48))
    s.add("sphere", base + np.array([0, 1.7, 0]) - fwd * 0.02, (0.23, 0.17, 0.23), (0.25, 0.17, 0.1))
    # Arms: the left one hangs, the right one holds the lead forward and down.
    o, sc, q = _segments(base + np.array([0, 1.45, 0]) - right * 0.25, base + np.array([0, 0.85, 0]) - right * 0.28, 0.1)
    s.add("cylinder", o, sc, shirt, quat=q)
    hand = base + np.array([0, 0.95, 0]) + right * 0.3 + fwd * 0.25
    o, sc, q = _segments(base + np.array([0, 1.45, 0]) + right * 0.25, hand, 0.1)
    s.add("cylinder", o, sc, shirt, quat=q)
    s.add("sphere", hand, (0.09, 0.09, 0.09), (0.78, 0.6, 0.48))
    return hand


# ----------------------------------------------------------------------------- levels
def _placement(d: Mapping[str, float]):
    """Where the dogs are, which way they face, how big they are and how they move (seeded per count).

    The first (largest) dog is ahead on the path at ``distance_m`` (to its
    nearest part); the others spread out beside and behind it. Returns per dog
    (origin, yaw, shoulder, motion) and, per dog, where it is at t = 0 (the
    default view frames them): its place and its heading.
    """
    count = int(round(min(max(d["count"], 1.0), 3.0)))
    dist = max(float(d["distance_m"]), 0.3)
    size = float(np.clip(d["dog_size_m"], 0.2, 0.9))
    act = float(np.clip(d["activity"], 0.0, 1.0))
    free = d["leash"] < 0.5
    dash = free and d["approach"] >= 0.5
    sh = np.full(count, size)
    if count > 1:
        sh[1:] = size * np.array([0.78, 0.62])[: count - 1]
    # At t = 0 the first dog stands 3/4 side-on a little right of the line of sight (recognisable, and it looks
    # at you); the others spread to the sides, a little further.
    half_len = 0.62 * sh  # nose (front) to the middle of the dog
    r = np.concatenate([[dist], dist + np.array([0.6, 1.3])[: count - 1] + 0.4 * sh[1:]])
    bearing = np.concatenate([[0.12], np.array([-0.55, 0.6])[: count - 1] / max(1.0, 0.5 + dist * 0.3)])
    centre_r = r + half_len
    x, z = np.sin(bearing) * centre_r, -np.cos(bearing) * centre_r
    face_patient = np.arctan2(x, z)  # forward (-sin yaw, -cos yaw) points from (x, z) to the feet
    yaw = face_patient + np.array([-1.1, 1.3, -1.4])[:count]  # 3/4 side-on
    stops = np.stack([x, np.zeros(count), z], 1)
    yaw_t0 = yaw
    motion = np.zeros((count, 4))
    if free and dash:
        # Run in along a line a little off the line of sight, stop at the described place, run back.
        dash_len = (2.5 + 1.5 * act) * np.ones(count)
        head = face_patient + np.array([-0.6, 0.5, -0.5])[:count]  # heading while running in
        fx, fz = -np.sin(head), -np.cos(head)
        x, z = x - fx * dash_len, z - fz * dash_len
        yaw = yaw_t0 = head
        speed = 1.0 + 1.5 * act
        phase = np.array([0.47, 0.44, 0.2])[:count]  # at (or nearly at) the stop at t = 0
        motion = np.stack([-dash_len, np.full(count, speed), phase, np.zeros(count)], 1)
    elif free and act >= 0.4:
        # Walk or trot in circles whose nearest point is the described place; side-on at t = 0.
        speed = 0.3 + 2.4 * (act - 0.4)
        radius = 1.0 + 0.6 * np.arange(count) + 0.8 * sh
        direction = np.where(np.arange(count) % 2 == 0, 1.0, -1.0)
        phase = face_patient + math.pi / 2  # the radius through the described place points at the patient
        cx = x - radius * np.cos(phase)
        cz = z + radius * np.sin(phase)
        x, z = cx, cz
        yaw_t0 = phase + np.where(direction < 0, math.pi, 0.0)
        yaw = np.zeros(count)
        motion = np.stack([radius, direction * speed / radius, phase, np.zeros(count)], 1)
    return np.stack([x, np.zeros(count), z], 1), yaw, sh, motion, stops, yaw_t0


def framing(points: np.ndarray, min_radius_m: float, eye_m: float = STANDING_EYE_M, margin: float = 1.3):
    """(pitch, yaw, vertical fov in degrees) of a view from an eye ``eye_m`` high that frames ``points``.

    The view looks at their centre and covers every point and a sphere of
    ``min_radius_m`` around the centre (the context: fence, owner, path), with
    a margin, between 12 and 100 degrees.
    """
    eye = np.array([0.0, eye_m, 0.0])
    pts = np.asarray(points, float)
    centre = pts.mean(axis=0)
    v = centre - eye
    dist = float(np.linalg.norm(v))
    u = v / dist
    w = pts - eye
    cosang = (w @ u) / np.maximum(np.linalg.norm(w, axis=1), 1e-6)
    half = max(float(np.arccos(np.clip(cosang, -1.0, 1.0)).max()), math.atan2(min_radius_m, dist))
    fovy = min(100.0, max(12.0, math.degrees(2.0 * math.atan(margin * math.tan(half)))))
    pitch = math.atan2(float(v[1]), float(math.hypot(v[0], v[2])))
    yaw = math.atan2(-float(v[0]), -float(v[2]))
    return pitch, yaw, fovy


def _dog_box(origin: np.ndarray, yaw: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Corners of each dog's bounding box (nose to tail, paws to ear tips) in the world."""
    corners = np.array([[sx * 0.25, y, zz] for sx in (-1, 1) for y in (0.0, DOG_TOP) for zz in (-1.25, 1.0)])
    out = []
    for o, a, s_ in zip(origin, yaw, sh):
        c, sn = math.cos(a), math.sin(a)
        p = corners * s_
        out.append(np.stack([c * p[:, 0] + sn * p[:, 2], p[:, 1], -sn * p[:, 0] + c * p[:, 2]], 1) + o)
    return np.concatenate(out)


def _fence(s: InstanceSet, z: float, kind: float) -> None:
    """A fence across the park at ``z``: a tall see-through metal railing (kind >= 0.75) or a low picket fence."""
    width = 30.0
    if kind >= 0.75:
        h = 1.5
        xs = np.arange(-width / 2, width / 2, 0.14)
        s.add("cube", np.stack([xs, np.full_like(xs, h / 2), np.full_like(xs, z)], 1), (0.025, h, 0.025),
              (0.12, 0.14, 0.13))
        s.add("cube", [(0, h - 0.06, z), (0, 0.12, z)], (width, 0.05, 0.04), (0.12, 0.14, 0.13))
        posts = np.arange(-width / 2, width / 2 + 0.1, 2.5)
        s.add("cube", np.stack([posts, np.full_like(posts, h / 2 + 0.05), np.full_like(posts, z)], 1), (0.07, h + 0.1, 0.07),
              (0.1, 0.11, 0.1))
    else:
        h = 0.55
        xs = np.arange(-width / 2, width / 2, 0.24)
        s.add("cube", np.stack([xs, np.full_like(xs, h / 2), np.full_like(xs, z)], 1), (0.07, h, 0.025),
              (0.93, 0.92, 0.88), pattern=WOOD)
        s.add("cube", [(0, h * 0.3, z + 0.03), (0, h * 0.75, z + 0.03)], (width, 0.05, 0.02), (0.9, 0.89, 0.85),
              pattern=WOOD)


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The park for one setting of the dials: the poster, or dogs (fenced, on the lead, free, running)."""
    s = InstanceSet()
    s.include(_park())
    act = float(np.clip(d["activity"], 0.0, 1.0))
    bark = float(np.clip(d["barking"], 0.0, 1.0))
    # The notice board is always there (a poster of the park's rules when the level shows no photo).
    s.add("cube", [(BOARD_X - 0.7, 0.9, BOARD_Z), (BOARD_X + 0.7, 0.9, BOARD_Z)], (0.08, 1.8, 0.08), (0.35, 0.25, 0.16),
          pattern=WOOD)
    s.add("cube", (BOARD_X, BOARD_Y, BOARD_Z + 0.01), (1.3, 0.95, 0.05), (0.45, 0.32, 0.2), pattern=WOOD)
    origin, yaw_d, sh, motion, stops, yaw_t0 = _placement(d)
    # The default view frames the photo or the dogs; between the two (a level change eased in) it turns smoothly.
    dist = float(np.linalg.norm(stops[0] - np.array([0.0, STANDING_EYE_M, 0.0])))
    # The other dogs join the framing gradually as the count dial grows (no jump when one appears).
    boxes = _dog_box(stops, yaw_t0, sh).reshape(len(stops), -1, 3)
    c0 = boxes[0].mean(axis=0)
    weight = np.clip((float(d["count"]) - np.arange(len(stops)) - 0.5) * 2.0, 0.0, 1.0)
    weight[0] = 1.0
    pts = c0 + (boxes - c0) * weight[:, None, None]
    dog_view = framing(pts.reshape(-1, 3), 0.35 + 0.06 * dist)
    board_view = framing(np.array([[BOARD_X - 0.65, BOARD_Y - 0.5, BOARD_Z], [BOARD_X + 0.65, BOARD_Y + 0.5, BOARD_Z]]),
                         0.6, margin=1.6)
    photo = float(np.clip(d["picture"], 0.0, 1.0))
    pitch, yaw, fovy = (a + (b - a) * photo for a, b in zip(dog_view, board_view))
    if photo >= 0.5:
        s.add("cube", (BOARD_X, BOARD_Y, BOARD_Z + 0.04), (1.1, 0.78, 0.01), (0.62, 0.72, 0.5), pattern=POSTER)
        s.add("cube", (BOARD_X, BOARD_Y + 0.3, BOARD_Z + 0.045), (1.1, 0.18, 0.005), (0.62, 0.78, 0.92), pattern=POSTER)
        add_dogs(s, np.zeros((1, 3)), 0.0, 0.38, np.zeros(4), _coat(d["coat"]), 0.0, 0.0, pointed_ears=False,
                 mount=(math.pi / 2, np.array([BOARD_X + 0.04, BOARD_Y - 0.32, BOARD_Z + 0.06]), 0.12))
        centre = (BOARD_X, 0.0, BOARD_Z)
    else:
        s.add("cube", (BOARD_X, BOARD_Y, BOARD_Z + 0.04), (1.0, 0.7, 0.01), (0.92, 0.9, 0.84), pattern=POSTER)
        count = len(origin)
        coats = np.stack([_coat(d["coat"]), _coat(0.15), _coat(0.75)])[:count]
        add_dogs(s, origin, yaw_d, sh, motion, coats, act, bark, pointed_ears=sh >= 0.5)
        nearest = float(np.hypot(stops[0, 0], stops[0, 2]))
        if d["fence"] >= 0.25:
            _fence(s, -max(nearest - 1.0 - 0.5 * float(sh[0]), 0.5), float(d["fence"]))
        if d["leash"] >= 0.5:
            # Each owner stands beside their dog on the side away from the patient, lead in hand to the collar.
            for i in range(count):
                a = float(yaw_d[i])
                fwd = np.array([-math.sin(a), 0.0, -math.cos(a)])
                right = np.array([math.cos(a), 0.0, -math.sin(a)])
                away = np.array([origin[i][0], 0.0, origin[i][2]])
                away /= max(float(np.linalg.norm(away)), 1e-6)
                side = 1.0 if float(right @ away) > 0 else -1.0
                spot = origin[i] + right * side * (0.45 + 0.6 * sh[i]) + fwd * 0.1
                hand = _person(s, float(spot[0]), float(spot[2]), a, SHIRTS[i])
                collar = origin[i] + fwd * (0.55 * sh[i]) + np.array([0.0, 1.0 * sh[i], 0.0])
                o, sc, q = _segments(hand, collar, 0.015)
                s.add("cylinder", o, sc, (0.7, 0.1, 0.1), quat=q)
        centre = (float(stops[0, 0]), 0.0, float(min(stops[0, 2], -2.0)))
    return s.build(LOOK, (0.0, 0.0, 0.0), gaze_pitch_rad=pitch, gaze_yaw_rad=yaw, view_fovy_deg=fovy, wind=0.25,
                   shadow_center=centre, shadow_radius_m=14.0)


class Dogs(Environment):
    """A city park where dogs appear: a poster, a dog behind a railing, on the lead nearer, then free and excited."""

    name = "dogs"
    title = "Dogs: city park"
    kind = "phobia"
    targets = ("cynophobia",)
    dials = DIALS
    levels = tuple(Level(title, description, dials) for title, description, dials in _LEVELS)
    shader = SHADER

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = Dogs()
