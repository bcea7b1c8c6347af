"""``python main.py bench render``: stereo frame cost per environment, lowest and highest level.

For every row the frame is issued (Python work: matrices, uniform blocks,
draws) and timed, then ``ctx.finish()`` waits for the driver and GPU: the
issue time is ``python_ms``, issue + finish is ``frame_ms``. Each frame starts
on an idle pipeline, so driver back-pressure does not leak into ``python_ms``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SIZES = ("1440x1600", "640x720")
PYTHON_MS_TARGET = 1.0
DRAWS_PER_EYE_TARGET = 40
DEFAULT_JSON = Path("bench-results") / "render.json"


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``bench render`` to the bench sub-commands."""
    b = bench.add_parser("render", help="stereo frame cost of every environment at its lowest and highest level")
    b.add_argument("--size", action="append", default=None, metavar="WxH",
                   help="per-eye size, repeatable (default 1440x1600 and 640x720)")
    b.add_argument("--frames", type=int, default=60, help="timed frames per row (default 60)")
    b.add_argument("--msaa", type=int, default=0, choices=(0, 2, 4, 8), help="multisampling (default 0)")
    b.add_argument("--backend", default="egl", choices=("egl",), help="GL context backend (egl uses the GPU's EGL when present)")
    b.add_argument("--environment", action="append", default=None, metavar="ENV", help="only these environments")
    b.add_argument("--quick", action="store_true", help="smoke test: 128x128, 5 frames")
    b.add_argument("--leak-frames", type=int, default=0, metavar="N",
                   help="also render N frames and report growth of Python memory, Python objects and GL objects")
    b.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="FILE",
                   help=f"JSON output (default {DEFAULT_JSON})")
    b.set_defaults(handler=run_bench)


def _moderngl_objects() -> int:
    import moderngl

    kinds = (moderngl.Buffer, moderngl.Texture, moderngl.Framebuffer, moderngl.VertexArray, moderngl.Program,
             moderngl.Renderbuffer, moderngl.Query)
    # type(), not isinstance(): gc also lists weakref proxies, and isinstance() on a proxy whose object has died
    # raises ReferenceError (it asks the dead object for its __class__). A proxy is not a GL object anyway.
    return sum(1 for o in gc.get_objects() if issubclass(type(o), kinds))


def bench_row(ctx, env: str, level: int, size: tuple[int, int], msaa: int, frames: int) -> dict:
    """Time ``frames`` stereo frames of one environment level at one per-eye size."""
    from environments.renderer import HeadPose, Renderer
    from environments.scene_state import SceneState

    renderer = Renderer(ctx, size, msaa=msaa, stereo=True)
    try:
        renderer.set_state(SceneState(environment=env, level=level))
        pose = HeadPose.default(size)
        for i in range(3):  # warm-up: shader compilation, first uploads, shadow map
            renderer.render(pose, i / 90)
            ctx.finish()
        issue = np.empty(frames)
        total = np.empty(frames)
        for i in range(frames):
            t0 = time.perf_counter()
            renderer.render(pose, (i + 3) / 90)
            t1 = time.perf_counter()
            ctx.finish()
            t2 = time.perf_counter()
            issue[i] = t1 - t0
            total[i] = t2 - t0
        py = np.empty(frames)
        for i in range(frames):
            # Python share of the issue: wall time minus the time inside moderngl's C calls (the GL driver;
            # llvmpipe shades vertices inside the draw call). cProfile's own overhead counts as Python.
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            renderer.render(pose, (i + 3) / 90)
            prof.disable()
            t1 = time.perf_counter()
            gl_s = sum(e.inlinetime for e in prof.getstats() if isinstance(e.code, str) and "mgl." in e.code)
            py[i] = max(t1 - t0 - gl_s, 0.0)
            ctx.finish()
        return {
            "environment": env,
            "level": level,
            "eye_size": [size[0], size[1]],
            "msaa": msaa,
            "frames": frames,
            "frame_ms_median": round(float(np.median(total)) * 1e3, 3),
            "python_ms_median": round(float(np.median(py)) * 1e3, 4),
            "_issue_ms_median": round(float(np.median(issue)) * 1e3, 3),
            "draw_calls_per_eye": renderer.draw_calls_per_eye,
            "instances": renderer.instances,
        }
    finally:
        renderer.release()


def leak_check(ctx, env: str, level: int, frames: int, size: tuple[int, int] = (32, 32)) -> dict:
    """Render ``frames`` frames at a tiny size; report growth of Python memory, Python objects and GL objects."""
    from environments.renderer import HeadPose, Renderer
    from environments.scene_state import SceneState

    renderer = Renderer(ctx, size, msaa=0, stereo=True)
    try:
        renderer.set_state(SceneState(environment=env, level=level, breath_phase=0.2, panel_text="check", fade=0.1))
        pose = HeadPose.default(size)
        tracemalloc.start()
        try:
            # Two identical measurement points: after a warm-up and after ``frames`` more frames.
            for i in range(100):
                renderer.render(pose, i / 90)
            ctx.finish()
            gc.collect()
            gl0, obj0, bytes0 = _moderngl_objects(), len(gc.get_objects()), tracemalloc.get_traced_memory()[0]
            for i in range(frames):
                renderer.render(pose, (100 + i) / 90)
                if i % 256 == 0:
                    ctx.finish()
            ctx.finish()
            gc.collect()
            gl1, obj1, bytes1 = _moderngl_objects(), len(gc.get_objects()), tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return {
            "environment": env,
            "level": level,
            "frames": frames,
            "python_bytes_growth": int(bytes1 - bytes0),
            "python_objects_growth": int(obj1 - obj0),
            "gl_objects_growth": int(gl1 - gl0),
        }
    finally:
        renderer.release()


def run_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from environments import registry
    from environments.displays import parse_size
    from environments.errors import RenderError
    from environments.displays.headless import create_egl_context

    if args.quick:
        sizes = [(128, 128)]
        frames = 5
    else:
        sizes = [parse_size(s) for s in (args.size or DEFAULT_SIZES)]
        frames = args.frames
    if frames < 1:
        raise RenderError(f"--frames {frames} must be at least 1")
    envs = args.environment or list(registry.names())
    for env in envs:
        registry.info(env)  # unknown names fail before any GL work
    ctx = create_egl_context()
    try:
        max_samples = int(ctx.info.get("GL_MAX_SAMPLES", 0))
        if args.msaa > max_samples:
            raise RenderError(f"--msaa {args.msaa} exceeds this GPU's maximum of {max_samples}")
        device = {"renderer": ctx.info["GL_RENDERER"], "gl_version": ctx.info["GL_VERSION"]}
        rows: list[dict] = []
        issue_ms: list[float] = []  # table only: the JSON rows keep the issue's exact schema
        for env in envs:
            info = registry.info(env)
            for level in sorted({0, info.max_level}):
                for size in sizes:
                    row = bench_row(ctx, env, level, size, args.msaa, frames)
                    issue_ms.append(row.pop("_issue_ms_median"))
                    rows.append(row)
        result: dict = {"device": device, "rows": rows}
        leaks = []
        if args.leak_frames:
            for env in envs:
                leaks.append(leak_check(ctx, env, registry.info(env).max_level, args.leak_frames))
            result["leak_check"] = leaks
    finally:
        ctx.release()

    console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get the whole table
    table = Table(title=f"bench render - {device['renderer']} - GL {device['gl_version']} - {platform.machine()}")
    for col in ("environment", "level", "eye size", "msaa", "frames", "frame ms", "issue ms", "python ms",
                "draws/eye", "instances"):
        table.add_column(col, justify="right" if col not in ("environment",) else "left")
    for r, issue in zip(rows, issue_ms):
        py_ok = r["python_ms_median"] <= PYTHON_MS_TARGET
        dr_ok = r["draw_calls_per_eye"] <= DRAWS_PER_EYE_TARGET
        table.add_row(
            r["environment"], str(r["level"]), f"{r['eye_size'][0]}x{r['eye_size'][1]}", str(r["msaa"]),
            str(r["frames"]), f"{r['frame_ms_median']:.2f}", f"{issue:.2f}",
            f"[{'green' if py_ok else 'red'}]{r['python_ms_median']:.3f}[/]",
            f"[{'green' if dr_ok else 'red'}]{r['draw_calls_per_eye']}[/]", str(r["instances"]),
        )
    console.print(table)
    console.print(
        "frame ms: issue + glFinish; issue ms: wall time of issuing the frame (on llvmpipe it includes vertex "
        "shading, done inside the draw calls); python ms: issue minus time inside GL calls.\n"
        f"targets: python ms <= {PYTHON_MS_TARGET} per stereo frame, draws per eye <= {DRAWS_PER_EYE_TARGET}"
    )
    if leaks:
        lt = Table(title="steady-state growth")
        for col in ("environment", "level", "frames", "python bytes", "python objects", "GL objects"):
            lt.add_column(col)
        for lk in leaks:
            lt.add_row(lk["environment"], str(lk["level"]), str(lk["frames"]), str(lk["python_bytes_growth"]),
                       str(lk["python_objects_growth"]), str(lk["gl_objects_growth"]))
        console.print(lt)
    out = Path(args.json)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as exc:
        raise RenderError(f"cannot write {out}: {exc.strerror or exc}; choose a writable --json path") from exc
    console.print(f"wrote {out}")
    return 0
