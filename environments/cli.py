"""Sub-commands of the environments package: ``envs list``, ``envs render`` and ``bench render``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands and its benchmarks to bench."""
    envs = commands.add_parser("envs", help="list environments, render any environment at any level")
    envs_sub = envs.add_subparsers(dest="envs_command", metavar="ACTION")
    envs_sub.required = True

    p_list = envs_sub.add_parser("list", help="every environment with its described levels and dials")
    p_list.add_argument("--levels", action="store_true", help="also print each level's description")
    p_list.set_defaults(handler=_list)

    p_render = envs_sub.add_parser("render", help="render one environment at one level to a PNG (headless)")
    p_render.add_argument("environment", metavar="ENV", help="environment name (see 'envs list')")
    p_render.add_argument("--level", type=int, default=0, help="described level (default 0)")
    p_render.add_argument("--out", type=Path, required=True, metavar="FILE.png", help="PNG to write")
    p_render.add_argument("--eye", choices=("left", "right", "both"), default="left", help="which eye (both: side by side)")
    p_render.add_argument("--size", default="640x720", metavar="WxH", help="per-eye size (default 640x720)")
    p_render.add_argument("--msaa", type=int, default=4, choices=(0, 2, 4, 8), help="multisampling (default 4)")
    p_render.add_argument("--intensity", type=float, default=0.0, help="0..1 towards the next level")
    p_render.add_argument("--text", default=None, help="show this message on the panel")
    p_render.add_argument("--suds", action="store_true", help="show the SUDS 0-100 prompt")
    p_render.add_argument("--breath", type=float, default=None, metavar="PHASE", help="show the breathing pacer at phase 0..1")
    p_render.add_argument("--fade", type=float, default=0.0, help="fade to black 0..1")
    p_render.add_argument("--time", type=float, default=0.0, metavar="S", help="animation time (wind, birds)")
    p_render.set_defaults(handler=_render)

    p_show = envs_sub.add_parser("show", help="show an environment live on a display (preview a level)")
    p_show.add_argument("environment", metavar="ENV", help="environment name (see 'envs list')")
    p_show.add_argument("--level", type=int, default=0, help="described level (default 0)")
    p_show.add_argument("--display", choices=("headless", "desktop", "openvr"), default="desktop",
                        help="where to show it (default desktop)")
    p_show.add_argument("--size", default="640x720", metavar="WxH", help="per-eye size (desktop, headless)")
    p_show.add_argument("--msaa", type=int, default=0, choices=(0, 2, 4, 8), help="multisampling (default 0)")
    p_show.add_argument("--mono", action="store_true", help="one eye only (desktop)")
    p_show.add_argument("--mirror", action="store_true", help="mirror the left eye to a window (openvr)")
    p_show.add_argument("--max-fps", type=float, default=None, help="frame-rate cap (headless, desktop)")
    p_show.add_argument("--frames", type=int, default=0, help="stop after N frames (default: until the window closes)")
    p_show.set_defaults(handler=_show)

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
    b.add_argument("--json", type=Path, default=Path("bench-results/render.json"), metavar="FILE",
                   help="JSON output (default bench-results/render.json)")
    b.set_defaults(handler=_bench)


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from environments import registry

    table = Table(title="vrex environments")
    for col in ("name", "kind", "levels", "title", "dials"):
        table.add_column(col)
    for name in registry.names():
        env = registry.info(name)
        table.add_row(env.name, env.kind, f"0..{env.max_level}", env.title, ", ".join(env.dials))
    console = Console()
    console.print(table)
    if args.levels:
        for name in registry.names():
            env = registry.info(name)
            console.print(f"\n[bold]{env.name}[/bold]: {env.title}")
            for lv in env.levels:
                console.print(f"  {lv.level:2d}  {lv.title}: {lv.description}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from environments import registry
    from environments.display import parse_size
    from environments.errors import RenderError
    from environments.snapshot import render_png
    from environments.scene_state import SceneState

    registry.check_level(args.environment, args.level)
    size = parse_size(args.size)
    if not 0.0 <= args.intensity <= 1.0:
        raise RenderError(f"--intensity {args.intensity} is out of range: use 0..1")
    if not 0.0 <= args.fade <= 1.0:
        raise RenderError(f"--fade {args.fade} is out of range: use 0..1")
    state = SceneState(
        environment=args.environment,
        level=args.level,
        intensity=args.intensity,
        panel_text=args.text,
        suds_prompt=args.suds,
        breath_phase=args.breath,
        fade=args.fade,
    )
    out = render_png(state, args.out, eye=args.eye, eye_size=size, msaa=args.msaa, t_s=args.time)
    print(f"wrote {out} ({args.environment} level {args.level}, {args.eye} eye, {size[0]}x{size[1]} per eye)")
    return 0


def _show(args: argparse.Namespace) -> int:
    import threading

    from environments import registry
    from environments.display import open_display, parse_size
    from environments.render_loop import RenderLoop
    from environments.scene_state import InputKind, SceneState, SceneStateBox

    registry.check_level(args.environment, args.level)
    box = SceneStateBox(SceneState(environment=args.environment, level=args.level))
    display = open_display(args.display, eye_size=parse_size(args.size), stereo=not args.mono, msaa=args.msaa,
                           mirror=args.mirror, max_fps=args.max_fps)
    stop = threading.Event()

    def on_input(event) -> None:
        print(f"patient input: {event.kind.value}" + (f" {event.value:g}" if event.value is not None else ""))
        if event.kind is InputKind.STOP:  # preview what the patient would get: the safe place
            box.put(SceneState(environment="safe_place", level=0, safe_place=True, breath_phase=0.0))
        elif event.kind is InputKind.QUIT:
            stop.set()

    try:
        stats = RenderLoop(display, box, on_input).run(stop, max_frames=args.frames or None)
    finally:
        display.close()
    gpu = f", GPU {stats.gpu_ms_median:.2f} ms" if stats.gpu_ms_median is not None else ""
    cpu = f"{stats.cpu_ms_median:.2f}" if stats.cpu_ms_median is not None else "-"
    print(f"{stats.frames} frames: CPU {cpu} ms median{gpu}, {stats.missed_frames} missed, "
          f"{stats.draw_calls_per_eye} draws per eye")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from environments.bench_render import run_bench

    return run_bench(args)
