"""The environments vrex can show: found, described, checked, and built for a level and its dials.

Environments are discovered, never listed by hand: every module or package in
:mod:`environments.scenes` that exposes ``ENVIRONMENT`` (an
:class:`environments.environment.Environment`), plus every entry point in the
group ``vrex.environments`` (a clinic's own package), so a new environment is a
new module, not a patch across vrex. The therapy runtime, the protocols and the
CLI ask this module (not the renderer) what exists, so they never need a GL
context; the renderer asks it for dial values and scene builds.
"""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

from environments.environment import Dial, Environment
from environments.errors import DialError, LevelOutOfRangeError, UnknownEnvironmentError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vrex.environments"
SCENES_PACKAGE = "environments.scenes"
DEFAULT_SAFE_ENVIRONMENT = "safe_place"
_KIND_ORDER = {"phobia": 0, "relaxation": 1, "safe": 2}


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """One step of an environment's hierarchy: what the patient will see there, and its dial values."""

    level: int
    title: str
    description: str
    dials: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    """An environment's identity, kind (``phobia``, ``relaxation`` or ``safe``), targets, levels and dials."""

    name: str
    title: str
    kind: str
    levels: tuple[LevelInfo, ...]
    dials: tuple[Dial, ...]
    targets: tuple[str, ...] = ()

    @property
    def max_level(self) -> int:
        return len(self.levels) - 1

    @property
    def dial_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dials)


_lock = threading.Lock()
_found: dict[str, Environment] | None = None


def _as_environment(obj: object, where: str) -> Environment | None:
    """An Environment from a module (its ``ENVIRONMENT``), a class (instantiated) or an instance."""
    if isinstance(obj, ModuleType):
        obj = getattr(obj, "ENVIRONMENT", None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, Environment):
        obj = obj()
    if not isinstance(obj, Environment):
        log.warning("%s is not an Environment (got %s); skipped", where, type(obj).__name__)
        return None
    try:
        obj.check()
    except ValueError as exc:
        log.warning("%s is not a valid environment (%s); skipped", where, exc)
        return None
    return obj


def _scan() -> dict[str, Environment]:
    found: dict[str, Environment] = {}

    def add(env: Environment | None, where: str) -> None:
        if env is None:
            return
        if env.name in found:
            log.warning("%s declares environment %r, which %s already provides; kept the first", where, env.name,
                        type(found[env.name]).__module__)
            return
        found[env.name] = env

    pkg = importlib.import_module(SCENES_PACKAGE)
    for mod in pkgutil.iter_modules(pkg.__path__, SCENES_PACKAGE + "."):
        add(_as_environment(importlib.import_module(mod.name), mod.name), mod.name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name!r} ({ep.value})"
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken add-on must not take the built-in environments with it
            log.warning("cannot load %s: %s; skipped", where, exc)
            continue
        add(_as_environment(loaded, where), where)
    return dict(sorted(found.items(), key=lambda kv: (_KIND_ORDER.get(kv[1].kind, 9), kv[0])))


def _all() -> dict[str, Environment]:
    global _found
    with _lock:
        if _found is None:
            _found = _scan()
        return _found


def refresh() -> None:
    """Forget what was found, so the next call scans again (after installing an add-on; tests)."""
    global _found
    with _lock:
        _found = None


def names() -> tuple[str, ...]:
    """Every environment name: phobias, then relaxation scenes, then safe places, each alphabetically."""
    return tuple(_all())


def get(name: str) -> Environment:
    """The environment called ``name``; :class:`UnknownEnvironmentError` lists the known names."""
    envs = _all()
    if name not in envs:
        raise UnknownEnvironmentError(
            f"unknown environment {name!r}: choose one of {', '.join(envs)} (see 'python main.py envs list')")
    return envs[name]


def info(name: str) -> EnvironmentInfo:
    """Describe one environment; :class:`UnknownEnvironmentError` lists the known names."""
    env = get(name)
    levels = tuple(LevelInfo(i, lv.title, lv.description, tuple(env.level_values(i).items()))
                   for i, lv in enumerate(env.levels))
    return EnvironmentInfo(name=env.name, title=env.title, kind=env.kind, levels=levels, dials=tuple(env.dials),
                           targets=tuple(env.targets))


def check_level(name: str, level: int) -> None:
    """Raise :class:`LevelOutOfRangeError` unless ``level`` is one of the environment's described levels."""
    env = get(name)
    top = len(env.levels) - 1
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= top:
        raise LevelOutOfRangeError(f"level {level!r} is out of range for environment {name!r}: use 0..{top}")


def validate_dial(environment: str, dial: str, value: float) -> float:
    """``value`` as a float if ``dial`` is one of the environment's dials and within its range.

    Otherwise a :class:`DialError` that lists every valid dial with its unit and
    range, so a therapist's ``SetDial`` is refused with a message that says
    what would have been accepted.
    """
    env = get(environment)
    valid = ", ".join(d.describe_range() for d in env.dials)
    try:
        d = env.dial(dial)
    except KeyError:
        raise DialError(f"environment {environment!r} has no dial {dial!r}: valid dials are {valid}") from None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DialError(f"dial {dial!r} of {environment!r} needs a number, got {value!r}: "
                        f"use {d.min:g}..{d.max:g}{' ' + d.unit if d.unit else ''}") from None
    if isinstance(value, bool) or not math.isfinite(v) or not d.min <= v <= d.max:
        raise DialError(f"dial {dial!r} of {environment!r} = {value!r} is out of range: use "
                        f"{d.min:g}..{d.max:g}{' ' + d.unit if d.unit else ''} (valid dials: {valid})")
    return v


def dial_values(name: str, level: int, intensity: float = 0.0,
                overrides: tuple[tuple[str, float], ...] = ()) -> dict[str, float]:
    """Every dial's value: the level's, moved ``intensity`` (0..1) towards the next level's, then overridden.

    This is how a scene changes gradually between described levels (``intensity
    == 0`` shows the level exactly as described). The level is clamped to the
    described ones; overrides on unknown dials are logged and ignored, values
    outside a dial's range are clamped (the renderer must never fail on them;
    :func:`validate_dial` is where a request is refused).
    """
    env = get(name)
    top = len(env.levels) - 1
    level = min(max(int(level), 0), top)
    cur = env.level_values(level)
    nxt = env.level_values(min(level + 1, top))
    f = min(max(float(intensity), 0.0), 1.0)
    values = {k: cur[k] + (nxt[k] - cur[k]) * f for k in cur}
    for dial, value in overrides:
        if dial not in values:
            log.warning("environment %s has no dial %r (known: %s); ignored", name, dial, ", ".join(values))
            continue
        d = env.dial(dial)
        v = float(value)
        values[dial] = min(max(v, d.min), d.max) if math.isfinite(v) else values[dial]
    return values


def build_from_values(name: str, values: Mapping[str, float]):
    """Build the scene of one environment for a full setting of its dials (renderer use)."""
    return get(name).build(values)


def build(name: str, level: int, intensity: float = 0.0, dials: tuple[tuple[str, float], ...] = ()):
    """Build the instance arrays of one level (the level is clamped, unknown dials are logged)."""
    return build_from_values(name, dial_values(name, level, intensity, dials))
