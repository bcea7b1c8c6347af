"""``public_speaking``: giving a talk from a lecture-hall stage, from two friendly colleagues to a full, critical hall.

The hierarchy follows what socially anxious patients and clinicians grade
(more people, closer, all eyes on you, listeners who grow bored or openly
critical, nothing to hold on to, a longer talk on the clock). The patient
stands on the stage behind a lectern with their notes; a countdown timer on a
stand in front of the stage shows the time left of the talk.

Every listener is a group of instanced parts on a seat of the raked hall. Their
heads turn in the vertex shader (this module's ``env_vertex``) from the frame
time and the viewer's eye position: attentive listeners look at the patient
(how fixedly is the ``gaze`` dial) and nod now and then; bored ones look down at
a glowing phone and only glance up; critical ones sit with crossed arms, stare,
shake their heads and turn to whisper to a neighbour. The countdown's
seven-segment digits count down on the GPU too: a frame uploads nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np

from environments.environment import Dial, Environment, EnvironmentShader, Level
from environments.scene_build import CARPET, FABRIC, WOOD, InstanceSet, SceneBuild, SceneLook, axis_quat

# Markers and modes carried in the anim column (read by SHADER's env_vertex).
TIMER = -1.0  # anim.w of a countdown segment
HEAD = 1.0  # anim.w of a head part is HEAD + gaze (1..2)
ATTENTIVE, BORED, CRITICAL = 0.0, 1.0, 2.0

DIALS = (
    Dial("audience", "people", 0.0, 216.0, 20.0, True, "how many people sit in the hall (it holds 216)"),
    Dial("distance_m", "m", 2.0, 8.0, 4.0, True, "from the patient to the front row of seats",
         fear_rises_with_value=False),
    Dial("gaze", "", 0.0, 1.0, 0.5, True, "how fixedly the listeners look at the patient (0 they look around "
         "the room, 1 every attentive face follows the patient's eyes)"),
    Dial("bored", "", 0.0, 0.5, 0.0, True, "share of the audience that is bored: heads down over glowing phones"),
    Dial("critical", "", 0.0, 0.5, 0.0, True, "share of the audience that is openly critical: crossed arms, "
         "shaking heads, whispering to each other"),
    Dial("lectern", "", 0.0, 1.0, 1.0, True, "1 the patient stands behind a lectern with notes; towards 0 it slides "
         "away and the patient stands in the open", fear_rises_with_value=False),
    Dial("talk_min", "min", 1.0, 30.0, 5.0, True, "length of the talk the countdown timer counts down"),
)


def _lv(audience, distance_m, gaze, bored=0.0, critical=0.0, lectern=1.0, talk_min=5.0):
    return dict(audience=audience, distance_m=distance_m, gaze=gaze, bored=bored, critical=critical,
                lectern=lectern, talk_min=talk_min)


_LEVELS: list[tuple[str, str, dict[str, float]]] = [
    ("Rehearsal for two colleagues", "Two friendly colleagues sit in the front row 6 m away and mostly look at "
     "their notes; you stand behind the lectern, a 3-minute countdown in front of you.",
     _lv(2, 6.0, 0.2, talk_min=3)),
    ("Five colleagues", "Five colleagues in the first rows, 5 m away; they look up at you now and then.",
     _lv(5, 5.0, 0.35, talk_min=3)),
    ("Team meeting, ten people", "Ten people, 4.5 m away, listening and looking at you about half the time; "
     "a 5-minute talk.",
     _lv(10, 4.5, 0.5, talk_min=5)),
    ("Twenty listeners", "Twenty attentive listeners fill the front rows 4 m away; most of them watch you.",
     _lv(20, 4.0, 0.65, talk_min=5)),
    ("Twenty, closer", "The same twenty listeners, the front row only 3 m away; they follow you with their eyes.",
     _lv(20, 3.0, 0.8, talk_min=5)),
    ("Forty, all eyes on you", "Forty people, 3 m away, every one of them looking straight at you; an 8-minute "
     "talk.",
     _lv(40, 3.0, 1.0, talk_min=8)),
    ("Sixty, some bored", "Sixty people; a few are bored and look down at their glowing phones, the rest watch "
     "you closely.",
     _lv(60, 2.8, 1.0, bored=0.12, talk_min=10)),
    ("Without the lectern", "The same sixty; the lectern is gone and you stand in the open with nothing to hold "
     "on to.",
     _lv(60, 2.8, 1.0, bored=0.12, lectern=0.0, talk_min=10)),
    ("Critical faces", "Ninety people, 2.5 m away; some sit with crossed arms, shake their heads and whisper to "
     "each other.",
     _lv(90, 2.5, 1.0, bored=0.15, critical=0.15, lectern=0.0, talk_min=10)),
    ("Large audience", "A hundred and thirty people, a quarter bored on their phones, a quarter openly "
     "critical; a 15-minute talk.",
     _lv(130, 2.3, 1.0, bored=0.22, critical=0.25, lectern=0.0, talk_min=15)),
    ("Nearly full hall", "One hundred and seventy people, the front row 2.2 m away, many bored or critical.",
     _lv(170, 2.2, 1.0, bored=0.28, critical=0.32, lectern=0.0, talk_min=20)),
    ("Full hall, hostile", "Every one of the 216 seats taken, the front row 2 m away; a third are bored on their "
     "phones, two fifths stare at you with crossed arms, shaking their heads and whispering; a 30-minute talk.",
     _lv(216, 2.0, 1.0, bored=0.33, critical=0.4, lectern=0.0, talk_min=30)),
]


SHADER = EnvironmentShader(
    vertex=f"""
const int SEG7[10] = int[10](63, 6, 91, 79, 102, 109, 125, 7, 127, 111);  // a..g bits of 0..9

void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t) {{
    if (anim.w == {TIMER:.1f}) {{
        // Countdown MM:SS: anim = (place * 8 + segment, talk seconds); place 4 is the colon (blinks).
        int idx = int(anim.x + 0.5);
        int place = idx / 8;
        int seg = idx - place * 8;
        int rem = int(ceil(anim.y - mod(t, anim.y)));
        int mm = rem / 60;
        int ss = rem - mm * 60;
        int digit = place == 0 ? mm / 10 : (place == 1 ? mm - (mm / 10) * 10 : (place == 2 ? ss / 10 : ss - (ss / 10) * 10));
        bool lit = place == 4 ? fract(t) < 0.5 : ((SEG7[digit] >> seg) & 1) == 1;
        if (!lit) p = vec3(0.0, -50.0, 0.0);
        return;
    }}
    if (anim.w < {HEAD:.1f}) return;
    // A head part: anim = (neck pivot height, mode, phase, 1 + gaze). The head turns about the neck towards the
    // viewer's eye (u_cam, in the listener's own frame), as much as its mode and the gaze dial say.
    float gaze = anim.w - 1.0;
    float ph = anim.z;
    vec3 cam = u_cam.xyz - i_group.xyz;
    float c = cos(i_group.w), s = sin(i_group.w);
    vec3 lc = vec3(c * cam.x - s * cam.z, cam.y - anim.x, s * cam.x + c * cam.z);
    float to_yaw = atan(-lc.x, -lc.z);
    float to_pitch = atan(lc.y, length(lc.xz));
    float wander_yaw = 0.55 * sin(t * 0.23 + ph * 3.1) + 0.25 * sin(t * 0.61 + ph);
    float wander_pitch = -0.28 + 0.12 * sin(t * 0.4 + ph * 1.3);
    float yaw, pitch;
    if (anim.y < 0.5) {{
        // Attentive: on the speaker as much as the gaze dial says, else around the room; nods now and then.
        float w = gaze * mix(0.7, 1.0, max(gaze, smoothstep(-0.3, 0.5, sin(t * 0.17 + ph * 5.0))));
        yaw = mix(wander_yaw, to_yaw, w);
        pitch = mix(wander_pitch, to_pitch, w);
        pitch -= 0.1 * pow(max(sin(t * 2.2 + ph * 7.0), 0.0), 4.0) * step(0.4, sin(t * 0.29 + ph * 2.0));
    }} else if (anim.y < 1.5) {{
        // Bored: eyes on the phone in the lap, now and then a short glance up.
        float glance = smoothstep(0.8, 0.95, sin(t * 0.27 + ph * 4.0)) * max(gaze, 0.3);
        yaw = mix(0.2 * sin(ph * 9.0), to_yaw, glance);
        pitch = mix(-0.8, to_pitch, glance);
    }} else {{
        // Critical: stares, chin up, shakes the head in bursts, turns to whisper to a neighbour.
        float whisper = smoothstep(0.75, 0.92, sin(t * 0.21 + ph * 6.0));
        float shake = 0.22 * sin(t * 7.0 + ph) * smoothstep(0.4, 0.8, sin(t * 0.37 + ph * 3.0));
        float side = sin(ph * 13.0) > 0.0 ? 1.0 : -1.0;
        float w = max(gaze, 0.6);
        yaw = mix(mix(wander_yaw, to_yaw, w) + shake, side * 1.15, whisper);
        pitch = mix(mix(wander_pitch, to_pitch, w) + 0.08, -0.15, whisper);
    }}
    yaw = clamp(yaw, -1.3, 1.3);
    pitch = clamp(pitch, -0.9, 0.6);
    vec3 pivot = vec3(0.0, anim.x, 0.05);
    vec3 q = p - pivot;
    float cp = cos(pitch), sp = sin(pitch);
    q = vec3(q.x, cp * q.y - sp * q.z, sp * q.y + cp * q.z);
    n = vec3(n.x, cp * n.y - sp * n.z, sp * n.y + cp * n.z);
    float cy = cos(yaw), sy = sin(yaw);
    q = vec3(cy * q.x + sy * q.z, q.y, -sy * q.x + cy * q.z);
    n = vec3(cy * n.x + sy * n.z, n.y, -sy * n.x + cy * n.z);
    p = q + pivot;
}}
""",
)

EYE_M = 1.65
STAGE_M = 0.7  # the stage's height above the hall floor
ROWS = 12
ROW_M = 0.95  # row pitch
RISE_M = 0.3  # each row this much higher than the one in front (raked seating)
BLOCKS = (5, 8, 5)  # seats per block (left, centre, right), aisles between
SEAT_M = 0.56
AISLE_M = 1.1
HALL_HALF_W = 9.0
CEILING_M = 7.5
LECTERN_Z = -0.5
NECK_M = 1.24  # neck pivot above the seat's floor (scaled per person)


def _seat_x() -> np.ndarray:
    xs = []
    total = sum(BLOCKS) * SEAT_M + (len(BLOCKS) - 1) * AISLE_M
    x = -total / 2 + SEAT_M / 2
    for n in BLOCKS:
        for _ in range(n):
            xs.append(x)
            x += SEAT_M
        x += AISLE_M
    return np.array(xs)


@functools.lru_cache(maxsize=1)
def _seats() -> dict[str, np.ndarray]:
    """Every seat's place in the hall (row, x) and the looks of whoever may sit there (seeded, so a listener
    keeps their seat, clothes and mood draw when the audience grows). ``order`` fills the hall from the front
    centre outwards, with some gaps."""
    rng = np.random.default_rng(5)
    xs = _seat_x()
    row = np.repeat(np.arange(ROWS), len(xs))
    x = np.tile(xs, ROWS)
    n = len(x)
    priority = row * 1.0 + np.abs(x) / 2.2 + rng.uniform(0.0, 1.6, n)
    skin_base = np.array([(0.92, 0.75, 0.62), (0.82, 0.62, 0.48), (0.62, 0.44, 0.31), (0.42, 0.29, 0.2)])
    hair_base = np.array([(0.08, 0.06, 0.05), (0.25, 0.16, 0.09), (0.5, 0.36, 0.2), (0.62, 0.6, 0.58),
                          (0.7, 0.55, 0.3)])
    shirt_base = np.array([(0.15, 0.2, 0.35), (0.6, 0.6, 0.62), (0.12, 0.12, 0.13), (0.55, 0.15, 0.15),
                           (0.85, 0.83, 0.78), (0.25, 0.4, 0.3), (0.6, 0.45, 0.3), (0.35, 0.3, 0.45)])
    return {
        "row": row,
        "x": x,
        "order": np.argsort(priority, kind="stable"),
        "mood": rng.uniform(0.0, 1.0, n),  # < critical: critical; > 1 - bored: bored
        "phase": rng.uniform(0.0, 6.283, n),
        "scale": rng.uniform(0.93, 1.06, n),
        "skin": skin_base[rng.integers(0, len(skin_base), n)] * rng.uniform(0.95, 1.05, (n, 1)),
        "hair": hair_base[rng.integers(0, len(hair_base), n)],
        "long_hair": rng.uniform(0.0, 1.0, n) < 0.4,
        "shirt": shirt_base[rng.integers(0, len(shirt_base), n)] * rng.uniform(0.85, 1.1, (n, 1)),
        "legs": np.array([(0.15, 0.17, 0.25), (0.2, 0.2, 0.2), (0.35, 0.3, 0.25)])[rng.integers(0, 3, n)],
    }


def _row_floor(row: np.ndarray | int, distance_m: float):
    """(y, z) of a row's floor: the front row at ``distance_m`` on the hall floor, each next one higher."""
    return -STAGE_M + RISE_M * np.asarray(row, float), -distance_m - ROW_M * np.asarray(row, float)


def _hall(s: InstanceSet, distance_m: float) -> None:
    """Stage, raked rows with their (empty) seats, walls, ceiling lights and the exit signs."""
    seats = _seats()
    back_z = -distance_m - ROW_M * ROWS - 0.8
    stage_edge = -(distance_m - 1.0)
    front_z = 3.0
    hall_d = front_z - back_z
    # Stage (dark boards) and its front face; the hall floor (carpet).
    s.add("cube", (0, -0.05, (front_z + stage_edge) / 2), (2 * HALL_HALF_W, 0.1, front_z - stage_edge),
          (0.2, 0.16, 0.13), pattern=WOOD)
    s.add("cube", (0, -STAGE_M / 2, stage_edge - 0.02), (2 * HALL_HALF_W, STAGE_M, 0.04), (0.12, 0.1, 0.1))
    s.add("cube", (0, -STAGE_M - 0.05, (stage_edge + back_z) / 2), (2 * HALL_HALF_W, 0.1, stage_edge - back_z),
          (0.22, 0.24, 0.3), pattern=CARPET)
    # Risers: each row's floor, a step up from the one in front.
    rows = np.arange(1, ROWS)
    ry, rz = _row_floor(rows, distance_m)
    s.add("cube", np.stack([np.zeros(len(rows)), (ry - STAGE_M) / 2, rz], 1),
          np.stack([np.full(len(rows), 2 * HALL_HALF_W), ry + STAGE_M, np.full(len(rows), ROW_M)], 1),
          (0.22, 0.24, 0.3), pattern=CARPET)
    # Seats: a red upholstered seat and back for every place, occupied or not (facing the stage).
    fy, fz = _row_floor(seats["row"], distance_m)
    red = (0.5, 0.08, 0.08)
    s.add("cube", np.stack([seats["x"], fy + 0.42, fz + 0.02], 1), (0.5, 0.1, 0.46), red, pattern=FABRIC)
    s.add("cube", np.stack([seats["x"], fy + 0.75, fz - 0.26], 1), (0.52, 0.62, 0.08), red, pattern=FABRIC,
          quat=axis_quat((1, 0, 0), -0.12))
    # Walls (warm wooden panels), back wall, ceiling with rows of lights, exit signs and doors at the back.
    zc = (front_z + back_z) / 2
    wall = (0.55, 0.4, 0.28)
    s.add("cube", [(-HALL_HALF_W - 0.05, CEILING_M / 2 - STAGE_M, zc), (HALL_HALF_W + 0.05, CEILING_M / 2 - STAGE_M, zc)],
          (0.1, CEILING_M, hall_d), wall, pattern=WOOD)
    s.add("cube", (0, CEILING_M / 2 - STAGE_M, back_z - 0.05), (2 * HALL_HALF_W, CEILING_M, 0.1), (0.4, 0.33, 0.28))
    s.add("cube", (0, CEILING_M / 2 - STAGE_M, front_z + 0.05), (2 * HALL_HALF_W, CEILING_M, 0.1), (0.3, 0.28, 0.27))
    s.add("cube", (0, CEILING_M - STAGE_M + 0.05, zc), (2 * HALL_HALF_W + 0.2, 0.1, hall_d + 0.2), (0.35, 0.33, 0.32))
    lz = np.arange(back_z + 2.0, front_z - 1.0, 3.0)
    lx = np.array([-5.0, 0.0, 5.0])
    s.add("cube", np.stack([np.repeat(lx, len(lz)), np.full(len(lx) * len(lz), CEILING_M - STAGE_M - 0.02),
                            np.tile(lz, len(lx))], 1), (1.4, 0.04, 0.4), (1.0, 0.95, 0.85), emissive=0.9)
    top_back = float(_row_floor(ROWS - 1, distance_m)[0])
    for x in (-HALL_HALF_W + 1.2, HALL_HALF_W - 1.2):
        s.add("cube", (x, top_back + 1.1, back_z + 0.02), (1.2, 2.2, 0.06), (0.3, 0.22, 0.15), pattern=WOOD)
        s.add("cube", (x, top_back + 2.5, back_z + 0.05), (0.5, 0.22, 0.04), (0.1, 0.8, 0.3), emissive=1.0)
    # A projection screen behind the speaker (seen when the patient turns round).
    s.add("cube", (0, 3.2, front_z - 0.02), (6.0, 3.4, 0.02), (0.9, 0.9, 0.92), emissive=0.2)


def _audience(s: InstanceSet, d: Mapping[str, float]) -> np.ndarray:
    """The listeners (all parts of each kind in one call per mesh and mood); returns their head centres."""
    seats = _seats()
    count = round(float(np.clip(d["audience"], 0, len(seats["x"]))))
    if count == 0:
        return np.zeros((0, 3))
    idx = np.sort(seats["order"][:count])
    gaze = float(np.clip(d["gaze"], 0.0, 1.0))
    bored = float(np.clip(d["bored"], 0.0, 0.5))
    critical = float(np.clip(d["critical"], 0.0, 0.5))
    mood = seats["mood"][idx]
    mode = np.where(mood < critical, CRITICAL, np.where(mood > 1.0 - bored, BORED, ATTENTIVE))
    fy, fz = _row_floor(seats["row"][idx], float(d["distance_m"]))
    x = seats["x"][idx]
    k = seats["scale"][idx]
    m = len(idx)
    group = np.stack([x, fy, fz, np.full(m, math.pi)], 1)
    skin, hair, shirt, legs = seats["skin"][idx], seats["hair"][idx], seats["shirt"][idx], seats["legs"][idx]
    neck = NECK_M * k
    head_anim = np.stack([neck, mode, seats["phase"][idx], np.full(m, HEAD + gaze)], 1)

    def part(mesh, offset, scale, color, sel=None, *, anim=None, quat=(0.0, 0.0, 0.0, 1.0), emissive=0.0):
        """One part for every listener (or those in ``sel``), offsets and sizes scaled by each one's size."""
        sel = np.ones(m, bool) if sel is None else sel
        if not sel.any():
            return
        kk = k[sel][:, None]
        col = np.broadcast_to(np.asarray(color, float), (m, 3))[sel]
        an = (0.0, 0.0, 0.0, 0.0) if anim is None else anim[sel]
        s.add(mesh, np.asarray(offset, float) * kk, np.asarray(scale, float) * kk, col, group=group[sel],
              quat=quat, anim=an, emissive=emissive)

    # Body: thighs on the seat, shins, torso, rounded shoulders, neck.
    part("cube", (0, 0.55, -0.12), (0.36, 0.15, 0.44), legs)
    part("cube", (0, 0.25, -0.33), (0.32, 0.48, 0.13), legs)
    part("cylinder", (0, 0.88, 0.06), (0.38, 0.56, 0.24), shirt)
    part("sphere", (0, 1.13, 0.06), (0.44, 0.17, 0.26), shirt)
    part("cylinder", (0, 1.21, 0.05), (0.1, 0.14, 0.1), skin)
    # Head parts (turned by the shader): head, hair (some long), eyes, nose.
    part("sphere", (0, 1.37, 0.04), (0.19, 0.23, 0.21), skin, anim=head_anim)
    part("sphere", (0, 1.43, 0.07), (0.205, 0.15, 0.21), hair, anim=head_anim)
    part("sphere", (0, 1.3, 0.11), (0.2, 0.3, 0.1), hair, seats["long_hair"][idx], anim=head_anim)
    part("cube", (-0.042, 1.39, -0.063), (0.03, 0.018, 0.02), (0.08, 0.06, 0.05), anim=head_anim)
    part("cube", (0.042, 1.39, -0.063), (0.03, 0.018, 0.02), (0.08, 0.06, 0.05), anim=head_anim)
    part("cube", (0, 1.355, -0.095), (0.03, 0.05, 0.04), skin * 0.95, anim=head_anim)
    # Arms by mood: resting on the lap, crossed over the chest, or holding a glowing phone.
    upper = (0.09, 0.34, 0.09)
    part("cylinder", (-0.23, 0.97, 0.05), upper, shirt * 0.92)
    part("cylinder", (0.23, 0.97, 0.05), upper, shirt * 0.92)
    calm = mode == ATTENTIVE
    part("cube", (-0.2, 0.72, -0.1), (0.08, 0.08, 0.32), shirt * 0.92, calm)
    part("cube", (0.2, 0.72, -0.1), (0.08, 0.08, 0.32), shirt * 0.92, calm)
    part("sphere", (-0.19, 0.72, -0.28), (0.08, 0.06, 0.1), skin, calm)
    part("sphere", (0.19, 0.72, -0.28), (0.08, 0.06, 0.1), skin, calm)
    crit = mode == CRITICAL
    part("cylinder", (0, 0.93, -0.1), (0.1, 0.36, 0.1), shirt * 0.85, crit, quat=axis_quat((0, 0, 1), math.pi / 2 - 0.2))
    part("cylinder", (0, 0.98, -0.12), (0.1, 0.36, 0.1), shirt * 0.8, crit, quat=axis_quat((0, 0, 1), math.pi / 2 + 0.2))
    bore = mode == BORED
    part("cube", (-0.13, 0.82, -0.16), (0.08, 0.08, 0.3), shirt * 0.92, bore, quat=axis_quat((0, 1, 0), -0.5))
    part("cube", (0.13, 0.82, -0.16), (0.08, 0.08, 0.3), shirt * 0.92, bore, quat=axis_quat((0, 1, 0), 0.5))
    part("cube", (0, 0.88, -0.3), (0.085, 0.15, 0.012), (0.75, 0.85, 1.0), bore, emissive=0.9,
         quat=axis_quat((1, 0, 0), -0.9))
    # Head centres in the world (for the default view's framing).
    return np.stack([x, fy + 1.37 * k, fz], 1)


def _timer(s: InstanceSet, talk_s: float, distance_m: float) -> np.ndarray:
    """The countdown on its stand near the stage's front edge, a little to the left of the audience's centre:
    MM:SS in amber seven-segment digits on a black panel tilted up to the speaker (larger when further away)."""
    ahead = distance_m - 1.2
    k = float(np.clip(ahead / 1.5, 0.7, 2.0))
    tx, ty, tz = -0.55 - 0.15 * ahead, 0.75 + 0.1 * ahead, -ahead
    s.add("cylinder", (tx, ty / 2, tz - 0.02), (0.05, ty, 0.05), (0.15, 0.15, 0.15))
    s.add("cylinder", (tx, 0.015, tz - 0.02), (0.45, 0.03, 0.45), (0.15, 0.15, 0.15))
    tilt = axis_quat((1, 0, 0), -0.2)  # leans back towards the speaker's eyes
    h = 0.16 * k
    panel_y = ty + 0.16 * k
    s.add("cube", (tx, panel_y, tz), (0.82 * k, 0.32 * k, 0.06), (0.03, 0.03, 0.03), quat=tilt)
    offs, scales, anims = [], [], []
    w = h * 0.55
    t = h * 0.13
    seg_off = np.array([(0, h / 2), (w / 2, h / 4), (w / 2, -h / 4), (0, -h / 2), (-w / 2, -h / 4), (-w / 2, h / 4),
                        (0, 0)])
    horiz, vert = (w, t, 0.01), (t, h / 2, 0.01)
    seg_scale = np.array([horiz, vert, vert, horiz, vert, vert, horiz])
    for place, cx in enumerate(np.array((-0.27, -0.14, 0.06, 0.19)) * k):
        offs.append(np.stack([seg_off[:, 0] + cx, seg_off[:, 1], np.full(7, 0.035)], 1))
        scales.append(seg_scale)
        anims.append(np.stack([place * 8 + np.arange(7), np.full(7, talk_s), np.zeros(7), np.full(7, TIMER)], 1))
    offs.append(np.array([(-0.04 * k, h / 5, 0.035), (-0.04 * k, -h / 5, 0.035)]))
    scales.append(np.array([(t, t, 0.01)] * 2))
    anims.append(np.array([(32, talk_s, 0, TIMER)] * 2, float))
    off = np.concatenate(offs)
    # Tilt the digits with the panel: rotate their offsets about the panel centre.
    q = tilt[:3], tilt[3]
    u, wq = np.asarray(q[0]), float(q[1])
    rot = off + 2.0 * np.cross(u, np.cross(u, off) + wq * off)
    s.add("cube", rot + (tx, panel_y, tz), np.concatenate(scales), (1.0, 0.3, 0.05), emissive=1.0, quat=tilt,
          anim=np.concatenate(anims))
    return np.array([[tx - 0.45 * k, panel_y, tz], [tx + 0.45 * k, panel_y, tz]])  # its edges, for the framing


def _lectern(s: InstanceSet, share: float) -> None:
    """A wooden lectern with the patient's notes and a microphone; it slides away to the right as ``share`` falls."""
    if share <= 0.02:
        return
    x = (1.0 - share) * 2.2
    z = LECTERN_Z
    oak = (0.45, 0.3, 0.18)
    s.add("cube", (x, 0.52, z - 0.08), (0.6, 1.04, 0.36), oak, pattern=WOOD)
    top = axis_quat((1, 0, 0), 0.35)  # slopes down towards the speaker
    s.add("cube", (x, 1.1, z), (0.66, 0.04, 0.46), (0.5, 0.34, 0.2), pattern=WOOD, quat=top)
    s.add("cube", (x - 0.06, 1.125, z + 0.01), (0.21, 0.006, 0.3), (0.8, 0.8, 0.77), quat=top)
    s.add("cube", (x + 0.1, 1.127, z + 0.03), (0.21, 0.006, 0.3), (0.77, 0.77, 0.75), quat=top)
    s.add("cylinder", (x + 0.24, 1.26, z - 0.05), (0.015, 0.3, 0.015), (0.1, 0.1, 0.1),
          quat=axis_quat((1, 0, 0), 0.5))
    s.add("sphere", (x + 0.24, 1.39, z + 0.02), (0.05, 0.07, 0.05), (0.08, 0.08, 0.08))


LOOK = SceneLook(
    sun_dir=(0.15, 0.75, 0.65),  # stage lights above and behind the speaker light the listeners' faces
    sun_rgb=(0.75, 0.7, 0.62),
    sky_zenith_rgb=(0.05, 0.05, 0.06),
    sky_horizon_rgb=(0.05, 0.05, 0.06),
    ground_ambient_rgb=(0.42, 0.39, 0.35),
    fog_rgb=(0.0, 0.0, 0.0),
    fog_density=0.0,
    indoor=True,
)
VIEW_ASPECT = 0.9  # width / height of a headset or gallery eye (the view's horizontal framing uses it)
VIEW_MARGIN = 1.15


def _framing(points: np.ndarray) -> tuple[float, float]:
    """(pitch, vertical fov in degrees) of a straight-ahead view from the speaker's eyes that takes in ``points``."""
    rel = points - (0.0, EYE_M, 0.0)
    ahead = np.maximum(-rel[:, 2], 0.3)
    elev = np.arctan2(rel[:, 1], ahead)
    az = np.arctan2(np.abs(rel[:, 0]), ahead)
    pitch = float((elev.max() + elev.min()) / 2)
    half_v = (elev.max() - elev.min()) / 2
    half_h = float(np.arctan(np.tan(az.max()) / VIEW_ASPECT))
    half = max(half_v, half_h) * VIEW_MARGIN
    return pitch, float(np.clip(math.degrees(2 * half), 55.0, 100.0))


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The lecture hall for one setting of the dials: seats, listeners, the lectern and the countdown."""
    s = InstanceSet()
    distance = float(np.clip(d["distance_m"], 2.0, 8.0))
    _hall(s, distance)
    heads = _audience(s, d)
    timer = _timer(s, float(np.clip(d["talk_min"], 1.0, 30.0)) * 60.0, distance)
    _lectern(s, float(np.clip(d["lectern"], 0.0, 1.0)))
    # Default view: straight at the audience, the countdown (and the lectern's top) at the bottom of the frame.
    if len(heads):
        focus = heads
    else:
        focus = np.array([[0.0, float(_row_floor(0, distance)[0]) + 1.3, -distance]])
    pitch, fovy = _framing(np.concatenate([focus, timer]))
    return s.build(LOOK, (0.0, 0.0, 0.0), gaze_pitch_rad=pitch, view_fovy_deg=fovy,
                   shadow_center=(0.0, -1000.0, 0.0), shadow_radius_m=1.0)


class PublicSpeaking(Environment):
    """Giving a talk in a lecture hall: more listeners, closer, all eyes on you, bored or critical, no lectern."""

    name = "public_speaking"
    title = "Public speaking: lecture hall"
    kind = "phobia"
    targets = ("social anxiety disorder", "fear of public speaking")
    dials = DIALS
    levels = tuple(Level(title, description, dials) for title, description, dials in _LEVELS)
    shader = SHADER

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = PublicSpeaking()
