"""What an environment hands the renderer: instance arrays per mesh, a look, and where the patient stands.

A scene is built once per level (or dial change) into plain numpy arrays, one
row per instance, laid out exactly as the renderer's instance buffers expect, so
an upload is one ``buffer.write`` per mesh and a frame never walks objects.

Instance row (28 float32):
``offset xyz | scale xyz | rotation quaternion xyzw | group origin xyz + yaw |
motion (radius m, angular speed rad/s, phase rad, wind sway) | colour rgb |
material (pattern id, emissive 0..1, alpha 0..1) | anim (free for the environment's shader)``.
The part transform (offset, scale, rotation) is applied first, then the
environment's own ``env_vertex`` (e.g. a spider leg's swing about its hip),
then the group's yaw and origin, then the group's motion, evaluated on the GPU
from the frame time: creatures walk and birds circle with no per-frame upload. Motion radius > 0 is a circle around the origin (speed in
rad/s); radius < 0 is a dash of ``-radius`` metres out along the group's
heading and back (speed in m/s, phase in round trips), in bursts with pauses.
``env_vertex`` is told how far the group has travelled (a gait follows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from environments.meshes import MESH_NAMES

INSTANCE_FLOATS = 28

# Shared surface patterns evaluated in the fragment shader (material.x); an environment's own
# materials start at ``environments.environment.ENV_MATERIAL_BASE`` and live in its own shader code.
PLAIN, WINDOWS, PAVING, GRASS, WATER, GLASS, ROAD, WOOD, PACER, FABRIC, CARPET = range(11)


@dataclass(frozen=True, slots=True)
class SceneLook:
    """Light and air of a scene: sun, sky, ambient and fog (linear RGB)."""

    sun_dir: tuple[float, float, float] = (0.4, 0.8, 0.3)  # towards the sun
    sun_rgb: tuple[float, float, float] = (1.0, 0.95, 0.85)
    sky_zenith_rgb: tuple[float, float, float] = (0.25, 0.45, 0.8)
    sky_horizon_rgb: tuple[float, float, float] = (0.7, 0.8, 0.9)
    ground_ambient_rgb: tuple[float, float, float] = (0.25, 0.22, 0.2)
    fog_rgb: tuple[float, float, float] = (0.7, 0.78, 0.88)
    fog_density: float = 0.0025  # per metre (exp2 fog)
    indoor: bool = False  # no sky disc, walls close the view


DEFAULT_FOVY_DEG = 100.0  # the untracked view (HeadPose.default): a headset-like vertical field of view


@dataclass(slots=True)
class SceneBuild:
    """One built level: per-mesh instance rows, split into opaque and transparent (glass) sets."""

    look: SceneLook
    anchor_xyz: tuple[float, float, float]  # where the patient's feet are (tracking origin), world metres
    anchor_yaw_rad: float = 0.0  # patient faces -Z rotated by this yaw
    # The level's default view on untracked displays (desktop start, envs render, the gallery, the
    # console's patient view): look down by the pitch, turn by the yaw (positive: to the left), and
    # narrow the field of view to frame the feared element (None: the display's own).
    gaze_pitch_rad: float = 0.0
    gaze_yaw_rad: float = 0.0
    view_fovy_deg: float | None = None
    view_eye_height_m: float | None = None  # e.g. seated at a table (None: the display's standing height)
    wind: float = 0.0  # 0..1, drives sway in the vertex shader
    shadow_center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shadow_radius_m: float = 40.0
    dynamic: bool = False  # instances move (motion radius > 0): refresh shadows every frame
    own_pacer: bool = False  # the scene shows the breathing pacer in its world (surf, seeds): no separate orb
    opaque: dict[str, np.ndarray] = field(default_factory=dict)
    transparent: np.ndarray = field(default_factory=lambda: np.zeros((0, INSTANCE_FLOATS), np.float32))

    @property
    def instance_count(self) -> int:
        return int(sum(len(a) for a in self.opaque.values()) + len(self.transparent))


def yaw_quat(yaw_rad: np.ndarray | float) -> np.ndarray:
    """Quaternion(s) (x, y, z, w) for a rotation about +Y."""
    y = np.asarray(yaw_rad, dtype=np.float64)
    return np.stack([np.zeros_like(y), np.sin(y / 2), np.zeros_like(y), np.cos(y / 2)], axis=-1)


def axis_quat(axis: tuple[float, float, float], angle_rad: np.ndarray | float) -> np.ndarray:
    """Quaternion(s) for a rotation of ``angle_rad`` about a unit ``axis``."""
    a = np.asarray(angle_rad, dtype=np.float64)
    ax = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    s = np.sin(a / 2)[..., None]
    return np.concatenate([ax * s, np.cos(a / 2)[..., None]], axis=-1)


class InstanceSet:
    """Collects instance rows per mesh with vectorised ``add`` calls (build time only)."""

    def __init__(self) -> None:
        self._opaque: dict[str, list[np.ndarray]] = {name: [] for name in MESH_NAMES}
        self._transparent: list[np.ndarray] = []

    def add(
        self,
        mesh: str,
        offset,
        scale,
        color,
        *,
        quat=(0.0, 0.0, 0.0, 1.0),
        group=(0.0, 0.0, 0.0, 0.0),
        motion=(0.0, 0.0, 0.0, 0.0),
        pattern: float = PLAIN,
        emissive=0.0,
        alpha=1.0,
        anim=(0.0, 0.0, 0.0, 0.0),
    ) -> None:
        """Add one or many instances; every argument broadcasts against the others."""
        offset = np.atleast_2d(np.asarray(offset, np.float32))
        n = max(len(np.atleast_2d(np.asarray(a))) for a in (offset, scale, color, quat, group, motion, anim))
        n = max(n, np.size(emissive), np.size(alpha))
        rows = np.empty((n, INSTANCE_FLOATS), np.float32)
        rows[:, 0:3] = offset
        rows[:, 3:6] = scale
        rows[:, 6:10] = quat
        rows[:, 10:14] = group
        rows[:, 14:18] = motion
        rows[:, 18:21] = color
        rows[:, 21] = pattern
        rows[:, 22] = emissive
        rows[:, 23] = alpha
        rows[:, 24:28] = anim
        if np.any(rows[:, 23] < 1.0):
            if mesh != "cube":
                raise ValueError("transparent instances must be cubes (glass panes)")
            self._transparent.append(rows)
        else:
            self._opaque[mesh].append(rows)

    def include(self, other: InstanceSet) -> None:
        """Add every instance of ``other`` (a cached static part of a scene) without copying it now."""
        for mesh, parts in other._opaque.items():
            self._opaque[mesh].extend(parts)
        self._transparent.extend(other._transparent)

    def build(self, look: SceneLook, anchor_xyz, **kwargs) -> SceneBuild:
        opaque = {
            name: (np.concatenate(parts) if parts else np.zeros((0, INSTANCE_FLOATS), np.float32))
            for name, parts in self._opaque.items()
        }
        transparent = (
            np.concatenate(self._transparent) if self._transparent else np.zeros((0, INSTANCE_FLOATS), np.float32)
        )
        dynamic = any(bool(np.any(a[:, 14] != 0.0)) for a in opaque.values())
        return SceneBuild(
            look=look,
            anchor_xyz=tuple(float(v) for v in anchor_xyz),
            opaque=opaque,
            transparent=transparent,
            dynamic=dynamic,
            **kwargs,
        )
