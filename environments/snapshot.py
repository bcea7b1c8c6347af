"""One-off renders of a scene state to an image (``envs render``, reports, tests), on a private EGL context."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from environments.errors import RenderError
from environments.scene_state import SceneState


def render_many(states: Iterable[SceneState], *, eye: str = "left", eye_size: tuple[int, int] = (640, 720),
                msaa: int = 4, t_s: float = 0.0) -> Iterator[np.ndarray]:
    """Render each state once on one private EGL context and renderer (the gallery renders dozens).

    Each state is shown settled (no easing from the previous one): a still of
    that state, from the level's default view.
    """
    from environments.displays.headless import create_egl_context
    from environments.render_loop import eye_image
    from environments.renderer import HeadPose, Renderer

    ctx = create_egl_context()
    try:
        samples = min(msaa, int(ctx.info.get("GL_MAX_SAMPLES", 4)))
        pose = HeadPose.default(eye_size)
        renderer = Renderer(ctx, eye_size, msaa=samples, stereo=True)
        try:
            for state in states:
                renderer.set_state(state)
                renderer.settle()
                renderer.render(pose, t_s)
                yield eye_image(renderer, eye)
        finally:
            renderer.release()
    finally:
        ctx.release()


def render_rgb(state: SceneState, **kwargs) -> np.ndarray:
    """Render ``state`` once, headless, and return the eye's (or both eyes') image as (H, W, 3) uint8."""
    return list(render_many([state], **kwargs))[0]


def render_png(state: SceneState, path: Path, **kwargs) -> Path:
    """Render ``state`` and write it to ``path`` as PNG; an unwritable path is a :class:`RenderError`."""
    from environments.render_loop import write_png

    rgb = render_rgb(state, **kwargs)
    try:
        return write_png(Path(path), rgb)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc.strerror or exc}; choose a writable --out path") from exc
