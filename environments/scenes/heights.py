"""``heights``: a balcony on a city tower, from the plaza up to a glass ledge 160 m above the street.

The hierarchy follows what height-phobic patients report as harder: higher,
closer to the edge, less solid protection (parapet, then bars, then glass, then
glass under the feet, then only a knee-high rail) and wind. Each level's dials are listed with its
description so the clinician sees exactly what changes.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from collections.abc import Mapping

from environments.environment import Dial, Environment, Level
from environments.scene_build import (
    DEFAULT_FOVY_DEG,
    GLASS,
    GRASS,
    PAVING,
    ROAD,
    WINDOWS,
    InstanceSet,
    SceneBuild,
    SceneLook,
    yaw_quat,
)

TOWER_HEIGHT_M = 160.0

DIALS = (
    Dial("height_m", "m", 0.0, TOWER_HEIGHT_M, 0.0, True, "how high above the plaza the patient stands"),
    Dial("edge_m", "m", 0.1, 8.0, 1.0, True, "distance from the patient's feet to where solid floor ends "
         "(the railing, or where a glass floor begins)", fear_rises_with_value=False),
    Dial("railing_m", "m", 0.0, 1.2, 1.1, True, "height of the railing or parapet at the edge",
         fear_rises_with_value=False),
    Dial("see_through", "", 0.0, 1.0, 0.0, True, "what the railing is made of: 0 solid parapet, 0.5 bars, 1 glass"),
    Dial("glass_floor", "", 0.0, 1.0, 0.0, True, "a glass floor beyond the concrete: 0 none, 0.5 reaching out "
         "1.5 m with the patient at its start, 1 reaching out 3 m with the patient in its middle"),
    Dial("wind", "", 0.0, 1.0, 0.1, True, "wind strength: sways the trees and flags, 1 is gusting"),
)

# (title, description, dials). Every fear-relevant dial moves one way only up the hierarchy (higher, nearer the
# edge, lower and more transparent protection, then glass underfoot, more wind), so a step up never gives back
# something a step down took away. see_through: 0 solid parapet, 0.5 bars, 1 glass.
_LEVELS: list[tuple[str, str, dict[str, float]]] = [
    ("Plaza", "Standing on the plaza in front of the tower, trees and people at eye level; the tower rises behind "
     "you and nothing is below your feet but paving.",
     dict(height_m=0.0, edge_m=8.0, railing_m=1.1, see_through=0.0, glass_floor=0.0, wind=0.05)),
    ("First-floor terrace (3 m)", "A wide terrace one floor up behind a chest-high concrete parapet; you stand "
     "1.5 m from it.",
     dict(height_m=3.0, edge_m=1.5, railing_m=1.1, see_through=0.0, glass_floor=0.0, wind=0.05)),
    ("Second floor (6 m)", "Two floors up, solid parapet, 1 m from the edge; the plaza is visible over the wall.",
     dict(height_m=6.0, edge_m=1.0, railing_m=1.1, see_through=0.0, glass_floor=0.0, wind=0.1)),
    ("Fourth floor (12 m)", "Twelve metres up; the parapet is replaced by a steel railing with bars you can see "
     "through.",
     dict(height_m=12.0, edge_m=1.0, railing_m=1.1, see_through=0.5, glass_floor=0.0, wind=0.1)),
    ("Seventh floor (20 m)", "Twenty metres, barred railing, standing 60 cm from the edge; tree tops are below you.",
     dict(height_m=20.0, edge_m=0.6, railing_m=1.1, see_through=0.5, glass_floor=0.0, wind=0.15)),
    ("Tenth floor (30 m)", "Thirty metres, a lower barred railing at hip height, 50 cm from the edge; a light "
     "breeze.",
     dict(height_m=30.0, edge_m=0.5, railing_m=1.0, see_through=0.5, glass_floor=0.0, wind=0.2)),
    ("Fifteenth floor (45 m)", "Forty-five metres behind a clear glass balustrade: nothing blocks the view down.",
     dict(height_m=45.0, edge_m=0.4, railing_m=1.0, see_through=1.0, glass_floor=0.0, wind=0.25)),
    ("Twentieth floor (60 m)", "Sixty metres, glass balustrade, 30 cm from the edge; the flags on the balcony move "
     "in the wind.",
     dict(height_m=60.0, edge_m=0.3, railing_m=1.0, see_through=1.0, glass_floor=0.0, wind=0.35)),
    ("Floor 26 (80 m)", "Eighty metres, a waist-high glass balustrade, 25 cm from the edge; birds circle below you.",
     dict(height_m=80.0, edge_m=0.25, railing_m=0.9, see_through=1.0, glass_floor=0.0, wind=0.45)),
    ("Floor 33 (100 m)", "One hundred metres, a low glass balustrade (80 cm) right at your feet; steady wind.",
     dict(height_m=100.0, edge_m=0.2, railing_m=0.8, see_through=1.0, glass_floor=0.0, wind=0.55)),
    ("Skydeck edge (125 m)", "A glass floor reaches 1.5 m out past the concrete; you stand 15 cm from where the "
     "concrete ends and the glass begins, the street visible through it.",
     dict(height_m=125.0, edge_m=0.15, railing_m=0.8, see_through=1.0, glass_floor=0.5, wind=0.7)),
    ("Glass floor (150 m)", "Standing on the glass floor 150 m above the plaza, the street straight below your "
     "feet; strong wind.",
     dict(height_m=150.0, edge_m=0.1, railing_m=0.8, see_through=1.0, glass_floor=1.0, wind=0.85)),
    ("Glass ledge at the top (160 m)", "At the top of the tower, out on the glass floor with only a knee-high glass "
     "rail (30 cm) at its end; the street 160 m straight below your feet; gusting wind.",
     dict(height_m=160.0, edge_m=0.1, railing_m=0.3, see_through=1.0, glass_floor=1.0, wind=1.0)),
]


LOOK = SceneLook(
    sun_dir=(0.45, 0.7, -0.55),
    sun_rgb=(1.05, 0.98, 0.88),
    sky_zenith_rgb=(0.18, 0.38, 0.78),
    sky_horizon_rgb=(0.66, 0.77, 0.9),
    ground_ambient_rgb=(0.22, 0.21, 0.2),
    fog_rgb=(0.68, 0.76, 0.86),
    fog_density=0.0022,
)


@functools.lru_cache(maxsize=1)
def _city() -> InstanceSet:
    """The static city around the tower (seeded: every run and every machine sees the same city)."""
    rng = np.random.default_rng(4)
    s = InstanceSet()
    # Ground: grass far out, paved plaza in front of the tower, a road grid.
    s.add("cube", (0, -0.5, 0), (3000, 1.0, 3000), (0.30, 0.36, 0.22), pattern=GRASS)
    s.add("cube", (0, 0.01, -30), (90, 0.02, 64), (0.55, 0.53, 0.5), pattern=PAVING)
    grid = np.arange(-640, 641, 80, dtype=np.float32)
    s.add("cube", np.stack([np.zeros_like(grid), np.full_like(grid, 0.02), grid + 40], 1), (1300, 0.04, 14),
          (0.2, 0.2, 0.21), pattern=ROAD)
    # Roads running along z: sized that way already (a yaw here would turn them back along x, through the plaza).
    s.add("cube", np.stack([grid + 40, np.full_like(grid, 0.02), np.zeros_like(grid)], 1), (14, 0.04, 1300),
          (0.2, 0.2, 0.21), pattern=ROAD)
    # City blocks: 1-4 buildings per 80 m block, keeping the plaza and the tower clear.
    cx, cz = np.meshgrid(grid, grid)
    cx, cz = cx.ravel(), cz.ravel()
    keep = ~((np.abs(cx) < 60) & (cz > -90) & (cz < 60))
    cx, cz = cx[keep], cz[keep]
    n_per = rng.integers(1, 5, size=len(cx))
    bx = np.repeat(cx, n_per) + rng.uniform(-20, 20, n_per.sum())
    bz = np.repeat(cz, n_per) + rng.uniform(-20, 20, n_per.sum())
    dist = np.hypot(bx, bz)
    h = rng.uniform(9, 45, len(bx)) * (1.0 + 2.2 * np.exp(-dist / 260.0)) * rng.choice([1, 1, 1, 2.2], len(bx))
    w = rng.uniform(14, 30, len(bx))
    d = rng.uniform(14, 30, len(bx))
    tone = rng.uniform(0.45, 0.8, len(bx))
    tint = np.stack([tone, tone * rng.uniform(0.93, 1.0, len(bx)), tone * rng.uniform(0.85, 1.0, len(bx))], 1)
    s.add("cube", np.stack([bx, h / 2, bz], 1), np.stack([w, h, d], 1), tint, pattern=WINDOWS)
    # Plaza life: trees (sway in the wind), benches, people, cars on the nearest roads.
    tx = np.concatenate([np.linspace(-38, 38, 8), np.linspace(-38, 38, 8)])
    tz = np.concatenate([np.full(8, -18.0), np.full(8, -48.0)])
    th = rng.uniform(5, 8, len(tx))
    s.add("cylinder", np.stack([tx, th / 4, tz], 1), np.stack([np.full_like(th, 0.35), th / 2, np.full_like(th, 0.35)], 1),
          (0.3, 0.22, 0.15), motion=(0, 0, 0, 0.05))
    s.add("sphere", np.stack([tx, th * 0.75, tz], 1), np.stack([th * 0.7, th * 0.6, th * 0.7], 1),
          (0.18, 0.32, 0.12), pattern=GRASS, motion=np.stack([np.zeros_like(th)] * 2 + [rng.uniform(0, 6, len(th)), np.full_like(th, 0.4)], 1))
    px = rng.uniform(-40, 40, 40)
    pz = rng.uniform(-58, -6, 40)
    s.add("cylinder", np.stack([px, np.full(40, 0.85), pz], 1), (0.5, 1.7, 0.5),
          rng.uniform(0.1, 0.7, (40, 3)))
    s.add("sphere", np.stack([px, np.full(40, 1.85), pz], 1), (0.28, 0.3, 0.28), (0.75, 0.6, 0.5))
    carz = rng.uniform(-600, 600, 60)
    lane = rng.choice([-3.0, 3.0], 60)
    roadx = rng.choice(grid + 40, 60)
    s.add("cube", np.stack([roadx + lane, np.full(60, 0.8), carz], 1), (2.0, 1.4, 4.4), rng.uniform(0.1, 0.9, (60, 3)))
    # The tower itself, behind the balcony (its face is the plane z = 0).
    s.add("cube", (0, TOWER_HEIGHT_M / 2, 15), (30, TOWER_HEIGHT_M, 30), (0.62, 0.64, 0.68), pattern=WINDOWS)
    s.add("cube", (0, TOWER_HEIGHT_M + 4, 22), (3, 8, 3), (0.5, 0.5, 0.52))
    return s


CONCRETE_DEPTH_M = 2.5  # the balcony's concrete deck, out from the tower face
GLASS_REACH_M = 3.0  # how far a full glass floor (glass_floor 1) reaches out past the concrete
GLASS_VIEW_FOVY_DEG = 65.0  # looking down through the glass: the street below, not the facade behind


def _smooth01(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _walk_out_m(glass_floor: float) -> float:
    """How far past the concrete the patient stands: from the glass's start (0.5) to its middle (1), eased.

    Continuous in the dial, so an eased level change walks the viewpoint out instead of jumping it (comfort).
    """
    return GLASS_REACH_M * glass_floor / 2.0 * _smooth01((glass_floor - 0.5) / 0.5)


def _gaze_pitch(height_m: float, edge_m: float, railing_m: float, glass_floor: float) -> float:
    """How far an untracked view looks down (rad): the railing's top edge in the lower third, the drop above it;
    with a glass floor, down through the glass (blended in with the dial, never a jump).

    Up high the patient should see what the level is about (the edge, the railing and the street far below)
    without moving the mouse; a headset's own pose replaces this.
    """
    eye_m = 1.65
    to_railing = math.atan2(max(eye_m - railing_m, 0.05), max(edge_m, 0.05))
    over = min(0.95, max(to_railing - math.radians(25.0), min(0.6, 0.12 + height_m / 300.0)))
    glass = min(max(glass_floor, 0.0), 1.0)
    toward_glass = over + (0.95 - over) * _smooth01(glass / 0.5)  # where the glass begins, the street beyond it
    return toward_glass + (1.2 - 0.95) * _smooth01((glass - 0.5) / 0.5)  # down through the glass under the feet


def build_scene(d: Mapping[str, float]) -> SceneBuild:
    """The tower for one setting of the dials: the static city plus the balcony, railing, glass, flags and birds."""
    s = InstanceSet()
    city = _city()
    s.include(city)
    h = d["height_m"]
    glass = min(max(d["glass_floor"], 0.0), 1.0)
    glass_m = GLASS_REACH_M * glass
    depth = CONCRETE_DEPTH_M + glass_m
    width = 5.0
    concrete = (0.6, 0.6, 0.6)
    # Where the feet are: edge_m counts from where solid floor ends (the deck's depth at most); on a glass floor
    # the patient walks out onto it. One formula on the plaza and up the tower, so easing from one level to the
    # next moves the viewpoint up in small steps and never sideways by more than a few centimetres.
    feet_z = -CONCRETE_DEPTH_M + min(float(d["edge_m"]), CONCRETE_DEPTH_M - 0.3) - _walk_out_m(glass)
    if h < 0.5:
        anchor = (0.0, 0.0, feet_z)  # on the plaza below the balcony, the tower behind you
    else:
        edge_z = -depth  # the railing, at the deck's outer end
        solid_end_z = -CONCRETE_DEPTH_M
        s.add("cube", (0, h - 0.15, solid_end_z / 2), (width, 0.3, CONCRETE_DEPTH_M), (0.58, 0.57, 0.55),
              pattern=PAVING)
        if glass_m > 0.01:
            gz = solid_end_z - glass_m / 2
            # The glass deck: a thin steel frame, then the pane (transparent, sorted back to front).
            s.add("cube", (0, h - 0.1, gz), (width, 0.04, glass_m), (0.6, 0.75, 0.8), pattern=GLASS, alpha=0.1)
            for x in (-width / 2, width / 2):
                s.add("cube", (x, h - 0.15, gz), (0.12, 0.3, glass_m), (0.3, 0.3, 0.32))
            s.add("cube", (0, h - 0.15, edge_z), (width, 0.3, 0.12), (0.3, 0.3, 0.32))
        anchor = (0.0, h, max(feet_z, edge_z + 0.3))
        rh = d["railing_m"]
        st = d["see_through"]
        front = [((0, h + rh / 2, edge_z), (width, rh, 0.0)), ((-width / 2, h + rh / 2, edge_z / 2), (0.0, rh, depth)),
                 ((width / 2, h + rh / 2, edge_z / 2), (0.0, rh, depth))]
        for (pos, size) in front:
            size = (max(size[0], 0.06), size[1], max(size[2], 0.06))
            if st < 0.25:  # solid concrete parapet
                s.add("cube", pos, size, concrete)
            else:
                s.add("cube", (pos[0], h + rh, pos[2]), (size[0] + 0.05, 0.06, size[2] + 0.05), (0.35, 0.36, 0.38))
                if st < 0.75:  # steel bars every 12 cm
                    n = int(max(size[0], size[2]) / 0.12)
                    t = np.linspace(-0.5, 0.5, n)[:, None]
                    along = np.array([[size[0], 0, size[2]]]) * t
                    base = np.array([[pos[0], pos[1], pos[2]]])
                    s.add("cube", base + along, (0.025, rh, 0.025), (0.35, 0.36, 0.38))
                else:  # glass balustrade
                    s.add("cube", pos, (size[0], rh - 0.08, size[2] if size[2] > 0.1 else 0.02),
                          (0.6, 0.75, 0.8), pattern=GLASS, alpha=0.12)
        # Flags at the balcony corners: they show the wind.
        for x in (-width / 2 + 0.1, width / 2 - 0.1):
            s.add("cylinder", (x, h + 1.5, edge_z + 0.15), (0.05, 3.0, 0.05), (0.8, 0.8, 0.82))
            s.add("cube", (x + 0.6, h + 2.6, edge_z + 0.15), (1.1, 0.7, 0.02), (0.75, 0.12, 0.1),
                  motion=(0, 0, x, 1.0))
    # Birds circling below the patient at the higher levels (motion on the GPU).
    if h > 40:
        rng = np.random.default_rng(11)
        n = 14
        origin = np.stack([rng.uniform(-30, 30, n), h * rng.uniform(0.4, 0.8, n), rng.uniform(-90, -30, n), np.zeros(n)], 1)
        motion = np.stack([rng.uniform(8, 25, n), rng.uniform(0.2, 0.5, n) * rng.choice([-1, 1], n), rng.uniform(0, 6.3, n),
                           np.zeros(n)], 1)
        s.add("cube", np.zeros((n, 3)), (1.1, 0.08, 0.35), (0.15, 0.15, 0.17), group=origin, motion=motion)
        s.add("sphere", np.zeros((n, 3)), (0.25, 0.22, 0.5), (0.85, 0.85, 0.85), group=origin, motion=motion)
    pitch = -_gaze_pitch(h, d["edge_m"], d["railing_m"], glass) if h > 0.5 else -0.05
    under = _smooth01((glass - 0.5) / 0.5) if h > 0.5 else 0.0
    fovy = None if under == 0.0 else DEFAULT_FOVY_DEG + (GLASS_VIEW_FOVY_DEG - DEFAULT_FOVY_DEG) * under
    return s.build(
        LOOK,
        anchor,
        gaze_pitch_rad=pitch,
        view_fovy_deg=fovy,
        wind=float(d["wind"]),
        shadow_center=(0.0, max(h - 20.0, 0.0), -20.0),
        shadow_radius_m=70.0,
    )


class Heights(Environment):
    """A balcony on a city tower: higher, nearer the edge, less solid protection, more wind."""

    name = "heights"
    title = "Heights: city tower balcony"
    kind = "phobia"
    targets = ("acrophobia",)
    dials = DIALS
    levels = tuple(Level(title, description, dials) for title, description, dials in _LEVELS)

    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        return build_scene(dials)


ENVIRONMENT = Heights()
