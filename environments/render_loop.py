"""The render loop: runs on the thread that owns the GL context and never waits for the therapy runtime.

Each frame it reads the latest :class:`SceneState` (a reference read), lets the
display pace and pose the frame, draws, presents, delivers patient input and
serves capture requests. While the scene asks for a SUDS answer it tells the
display (whose thumbstick or keys move the answer's marker) and draws the
marker where the display says it is. A failing input callback or a bad scene state is
logged and the loop carries on: the patient never sees a frozen headset
because a background part failed.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from environments.displays.base import Display, FrameStats
from environments.errors import RenderError
from environments.renderer import Renderer
from environments.scene_state import InputKind, PatientInput, SceneStateBox

log = logging.getLogger(__name__)

EYES = ("left", "right", "both")


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 array as PNG, creating the folder; returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)
    return path


def eye_image(renderer: Renderer, eye: str) -> np.ndarray:
    """One eye's last frame, or both side by side (left | right)."""
    if eye == "both":
        if renderer.eye_count == 1:
            return renderer.read_rgb(0)
        return np.concatenate([renderer.read_rgb(0), renderer.read_rgb(1)], axis=1)
    return renderer.read_rgb(1 if eye == "right" and renderer.eye_count > 1 else 0)


class RenderLoop:
    """Draws ``scene`` on ``display`` until stopped; patient actions go to ``on_input``."""

    def __init__(self, display: Display, scene: SceneStateBox, on_input: Callable[[PatientInput], None]) -> None:
        self.display = display
        self.scene = scene
        self.on_input = on_input
        self._captures: list[tuple[Path | None, str, concurrent.futures.Future]] = []  # None: request_rgb
        self._lock = threading.Lock()
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self.renderer: Renderer | None = None
        self.frames = 0
        #: extra seconds between frames (set from another thread): how a session that falls behind its clock
        #: lowers the render rate on a CPU-only machine instead of deciding on starved data
        self.frame_gap_s = 0.0

    def request_capture(self, path: Path, eye: str = "left") -> concurrent.futures.Future[Path]:
        """Thread-safe: the next frame rendered is also written to ``path`` as PNG (future -> path)."""
        if eye not in EYES:
            raise RenderError(f"eye {eye!r} is not one of {', '.join(EYES)}")
        fut: concurrent.futures.Future[Path] = concurrent.futures.Future()
        with self._lock:
            self._captures.append((Path(path), eye, fut))
        return fut

    def request_rgb(self, eye: str = "left") -> concurrent.futures.Future[np.ndarray]:
        """Thread-safe: the next frame rendered, as an (H, W, 3) uint8 array (no file): what a clinician's
        console shows as the patient's view. The readback runs on the render thread; nothing is encoded there."""
        if eye not in EYES:
            raise RenderError(f"eye {eye!r} is not one of {', '.join(EYES)}")
        fut: concurrent.futures.Future[np.ndarray] = concurrent.futures.Future()
        with self._lock:
            self._captures.append((None, eye, fut))
        return fut

    def _deliver(self, event: PatientInput) -> None:
        try:
            self.on_input(event)
        except Exception:
            log.exception("patient-input handler failed for %s; the render loop carries on", event)

    def run(self, stop: threading.Event, *, max_frames: int | None = None) -> FrameStats:
        """Render until ``stop`` is set, ``max_frames`` were shown, or the display closes (then QUIT is emitted)."""
        display = self.display
        renderer: Renderer | None = None
        t0 = time.perf_counter()
        last_state = None
        try:
            while not stop.is_set():
                pose = display.begin_frame()
                if pose is None:
                    self._deliver(PatientInput(t_s=time.perf_counter(), kind=InputKind.QUIT, source=display.kind))
                    break
                if renderer is None:  # created on the first frame, on this (the GL) thread
                    renderer = Renderer(display.ctx, display.eye_size, msaa=display.msaa, stereo=display.stereo)
                    self.renderer = renderer
                state = self.scene.get()
                if state is not last_state:
                    try:
                        renderer.set_state(state)
                    except RenderError as exc:
                        if renderer.level < 0:
                            raise
                        log.error("scene state %s rejected: %s", state, exc)
                    display.suds.set_active(state.suds_prompt)
                    last_state = state
                renderer.set_suds_marker(display.suds.marker())
                renderer.render(pose, time.perf_counter() - t0)
                display.present(renderer.eye_textures)
                self.frames += 1
                display.poll(self._deliver)
                if self._captures:
                    self._serve_captures(renderer)
                if self.frame_gap_s > 0:  # the session asked for fewer frames (its loop was starved of CPU)
                    stop.wait(self.frame_gap_s)
                if max_frames is not None and self.frames >= max_frames:
                    break
            if renderer is None:
                return display.timer.stats()
            return display.timer.stats(renderer.draw_calls_per_eye, renderer.instances)
        finally:
            self._fail_pending("the render loop stopped before the frame was captured")
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            if renderer is not None:
                renderer.release()
            self.renderer = None

    def _serve_captures(self, renderer: Renderer) -> None:
        with self._lock:
            pending, self._captures = self._captures, []
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vrex-capture")
        for path, eye, fut in pending:
            try:
                rgb = eye_image(renderer, eye)  # readback must happen here, on the GL thread
            except Exception as exc:
                fut.set_exception(exc)
                continue
            if path is None:  # request_rgb: the array itself
                fut.set_result(rgb)
                continue
            # PNG encoding runs off the render thread so a capture does not drop a headset frame.
            self._writer.submit(self._encode, path, rgb, fut)

    @staticmethod
    def _encode(path: Path, rgb: np.ndarray, fut: concurrent.futures.Future[Path]) -> None:
        try:
            fut.set_result(write_png(path, rgb))
        except Exception as exc:
            fut.set_exception(exc)

    def _fail_pending(self, why: str) -> None:
        with self._lock:
            pending, self._captures = self._captures, []
        for _, _, fut in pending:
            fut.set_exception(RenderError(why))
