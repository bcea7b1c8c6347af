"""Sub-commands of the environments package: ``envs list``, ``envs render`` and ``envs show`` (``bench render`` lives in ``bench.render``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's commands to commands (its benchmarks are registered by ``bench.cli``)."""
    envs = commands.add_parser("envs", help="list environments, render any environment at any level")
    envs_sub = envs.add_subparsers(dest="envs_command", metavar="ACTION")
    envs_sub.required = True

    p_list = envs_sub.add_parser("list", help="every environment with its described levels and dials")
    p_list.add_argument("--levels", action="store_true", help="also print each level's description")
    p_list.add_argument("--json", action="store_true", help="print the catalogue as JSON (names, dials, levels)")
    p_list.set_defaults(handler=_list)

    p_gallery = envs_sub.add_parser("gallery", help="render every environment at levels 0, middle and max "
                                    "into PNGs and an HTML contact sheet")
    p_gallery.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    p_gallery.add_argument("--size", default="320x360", metavar="WxH", help="per-image size (default 320x360)")
    p_gallery.add_argument("--msaa", type=int, default=4, choices=(0, 2, 4, 8), help="multisampling (default 4)")
    p_gallery.add_argument("--environment", action="append", default=None, metavar="ENV",
                           help="only these environments (repeatable)")
    p_gallery.set_defaults(handler=_gallery)

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


def catalogue() -> list[dict]:
    """Every environment as plain data: what ``envs list --json`` prints and the gallery describes."""
    from environments import registry

    out = []
    for name in registry.names():
        env = registry.info(name)
        out.append({
            "name": env.name,
            "title": env.title,
            "kind": env.kind,
            "targets": list(env.targets),
            "dials": [{"name": d.name, "unit": d.unit, "min": d.min, "max": d.max, "default": d.default,
                       "fear_relevant": d.fear_relevant, "description": d.description} for d in env.dials],
            "levels": [{"index": lv.level, "title": lv.title, "description": lv.description} for lv in env.levels],
        })
    return out


def _list(args: argparse.Namespace) -> int:
    import json

    if args.json:
        print(json.dumps(catalogue(), indent=2))
        return 0

    from rich.console import Console
    from rich.table import Table

    from environments import registry

    table = Table(title="vrex environments")
    for col in ("name", "kind", "levels", "title", "dials"):
        table.add_column(col)
    for name in registry.names():
        env = registry.info(name)
        table.add_row(env.name, env.kind, f"0..{env.max_level}", env.title, ", ".join(env.dial_names))
    console = Console()
    console.print(table)
    if args.levels:
        for name in registry.names():
            env = registry.info(name)
            console.print(f"\n[bold]{env.name}[/bold]: {env.title}")
            for lv in env.levels:
                console.print(f"  {lv.level:2d}  {lv.title}: {lv.description}")
    return 0


def gallery_levels(max_level: int) -> list[int]:
    """The levels the gallery shows: the first, the middle and the last (fewer when they coincide)."""
    return sorted({0, max_level // 2, max_level})


def write_gallery(out: Path, *, size: tuple[int, int] = (320, 360), msaa: int = 4,
                  environments: list[str] | None = None) -> Path:
    """Render each environment at ``gallery_levels`` from each level's default view; write PNGs and index.html."""
    import html

    from environments import registry
    from environments.errors import RenderError
    from environments.render_loop import write_png
    from environments.scene_state import SceneState
    from environments.snapshot import render_many

    names = environments or list(registry.names())
    for name in names:
        registry.get(name)  # an unknown name fails before anything is rendered
    shots = [(name, lv) for name in names for lv in gallery_levels(registry.info(name).max_level)]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"cannot create {out}: {exc.strerror or exc}; choose a writable --out folder") from exc
    images = list(render_many((SceneState(environment=n, level=lv) for n, lv in shots), eye_size=size, msaa=msaa))
    for (name, lv), rgb in zip(shots, images):
        write_png(out / f"{name}_{lv:02d}.png", rgb)
    write_png(out / "sheet.png", _contact_sheet(shots, images, size))  # one picture for a README
    rows = []
    for entry in catalogue():
        if entry["name"] not in names:
            continue
        cells = []
        for lv in gallery_levels(len(entry["levels"]) - 1):
            level = entry["levels"][lv]
            cells.append(
                f'<figure><img src="{entry["name"]}_{lv:02d}.png" width="{size[0]}" height="{size[1]}" '
                f'alt="{html.escape(entry["title"])}, level {lv}">'
                f'<figcaption><b>Level {lv}: {html.escape(level["title"])}</b><br>'
                f'{html.escape(level["description"])}</figcaption></figure>')
        dials = ", ".join(f'{d["name"]} ({d["unit"] + ", " if d["unit"] else ""}{d["min"]:g}..{d["max"]:g})'
                          for d in entry["dials"])
        rows.append(f'<section><h2>{html.escape(entry["title"])} <small>({entry["name"]}, {entry["kind"]}, '
                    f'{len(entry["levels"])} levels)</small></h2><p>Dials: {html.escape(dials)}</p>'
                    f'<div class="row">{"".join(cells)}</div></section>')
    style = ("body{font-family:sans-serif;margin:1.5em;max-width:75em}.row{display:flex;gap:1em;flex-wrap:wrap}"
             f"figure{{margin:0;width:{size[0]}px}}figcaption{{font-size:.85em}}small{{color:#666}}")
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vrex environments</title>'
            f'<style>{style}</style></head><body><h1>vrex environments</h1>'
            f'<p>Each environment at its first, middle and highest level, from the level\'s default view '
            f'(rendered headless by <code>python main.py envs gallery</code>).</p>{"".join(rows)}</body></html>\n')
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _contact_sheet(shots, images, size: tuple[int, int]):
    """Every environment on a row of its own (levels 0, middle, max), as one RGB array."""
    import numpy as np

    names = list(dict.fromkeys(name for name, _ in shots))
    w, h = size
    sheet = np.full((len(names) * h, 3 * w, 3), 255, np.uint8)
    column: dict[str, int] = {}
    for (name, _), rgb in zip(shots, images):
        row, col = names.index(name), column.get(name, 0)
        column[name] = col + 1
        sheet[row * h:(row + 1) * h, col * w:(col + 1) * w] = rgb
    return sheet


def _gallery(args: argparse.Namespace) -> int:
    from environments.displays import parse_size

    index = write_gallery(args.out, size=parse_size(args.size), msaa=args.msaa, environments=args.environment)
    print(f"wrote {index} and its PNGs")
    return 0


def _render(args: argparse.Namespace) -> int:
    from environments import registry
    from environments.displays import parse_size
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
    from environments.displays import open_display, parse_size
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
