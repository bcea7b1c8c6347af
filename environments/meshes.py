"""Unit meshes every scene is built from (interleaved position + normal, float32).

Scenes never own geometry: they place instances of these few meshes, so a whole
environment is drawn with one instanced call per mesh. Each mesh is centred on
its origin and spans -0.5..0.5 on every axis, so an instance's ``scale`` is its
size in metres.
"""

from __future__ import annotations

import numpy as np

MESH_NAMES: tuple[str, ...] = ("cube", "sphere", "cylinder", "cone")


def cube() -> np.ndarray:
    """24 vertices (flat normals per face) as 36 triangle-list vertices."""
    faces = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u = np.zeros(3)
            v = np.zeros(3)
            u[(axis + 1) % 3] = 1.0
            v[(axis + 2) % 3] = 1.0
            if sign < 0:
                u, v = v, u  # keep counter-clockwise winding seen from outside
            c = n * 0.5
            corners = [c - u * 0.5 - v * 0.5, c + u * 0.5 - v * 0.5, c + u * 0.5 + v * 0.5, c - u * 0.5 + v * 0.5]
            for i in (0, 1, 2, 0, 2, 3):
                faces.append(np.concatenate([corners[i], n]))
    return np.asarray(faces, dtype=np.float32)


def sphere(segments: int = 14, rings: int = 8) -> np.ndarray:
    """A UV sphere of diameter 1 with smooth normals, as a triangle list."""
    theta = np.linspace(0.0, np.pi, rings + 1)
    phi = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    n = np.stack([np.sin(t) * np.cos(p), np.cos(t), -np.sin(t) * np.sin(p)], axis=-1)
    tris = []
    for r in range(rings):
        for s in range(segments):
            a, b, c, d = n[r, s], n[r + 1, s], n[r + 1, s + 1], n[r, s + 1]
            tris.extend([a, b, c, a, c, d])
    normals = np.asarray(tris)
    return np.concatenate([normals * 0.5, normals], axis=1).astype(np.float32)


def cylinder(segments: int = 16, top_radius: float = 0.5) -> np.ndarray:
    """A capped cylinder (or cone when ``top_radius`` is 0) of height 1 and base diameter 1."""
    ang = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    verts = []
    slope = 0.5 - top_radius  # radius drop over unit height
    for i in range(segments):
        a0, a1 = ang[i], ang[i + 1]
        d0 = np.array([np.cos(a0), 0.0, -np.sin(a0)])
        d1 = np.array([np.cos(a1), 0.0, -np.sin(a1)])
        n0 = d0 + np.array([0.0, slope, 0.0])
        n1 = d1 + np.array([0.0, slope, 0.0])
        n0 /= np.linalg.norm(n0)
        n1 /= np.linalg.norm(n1)
        b0, b1 = d0 * 0.5 - [0, 0.5, 0], d1 * 0.5 - [0, 0.5, 0]
        t0, t1 = d0 * top_radius + [0, 0.5, 0], d1 * top_radius + [0, 0.5, 0]
        for p, nn in ((b0, n0), (b1, n1), (t1, n1), (b0, n0), (t1, n1), (t0, n0)):
            verts.append(np.concatenate([p, nn]))
        up, down = np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0])
        if top_radius > 0:
            for p in (np.array([0, 0.5, 0]), t0, t1):
                verts.append(np.concatenate([p, up]))
        for p in (np.array([0, -0.5, 0]), b1, b0):
            verts.append(np.concatenate([p, down]))
    return np.asarray(verts, dtype=np.float32)


def build_all() -> dict[str, np.ndarray]:
    """Every named mesh, ready to upload."""
    return {"cube": cube(), "sphere": sphere(), "cylinder": cylinder(), "cone": cylinder(top_radius=0.0)}
