"""The environments vrex can show, their described levels and dials.

The therapy runtime, the protocols and the CLI ask this module (not the
renderer) what exists, so they never need a GL context. Each environment
module holds its levels' patient/clinician-readable descriptions next to the
dial values that realise them.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from types import ModuleType

from environments.errors import LevelOutOfRangeError, UnknownEnvironmentError

log = logging.getLogger(__name__)

# name -> module (each defines NAME, TITLE, KIND, LEVELS, DIALS, build()).
_MODULES: dict[str, str] = {
    "heights": "environments.heights",
    "spiders": "environments.spiders",
    "safe_place": "environments.safe_place",
}


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """One step of an environment's hierarchy: what the patient will see there."""

    level: int
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    """An environment's identity, kind (``phobia``, ``relaxation`` or ``safe``), levels and tunable dials."""

    name: str
    title: str
    kind: str
    levels: tuple[LevelInfo, ...]
    dials: tuple[str, ...]

    @property
    def max_level(self) -> int:
        return len(self.levels) - 1


def _module(name: str) -> ModuleType:
    if name not in _MODULES:
        known = ", ".join(names())
        raise UnknownEnvironmentError(f"unknown environment {name!r}: choose one of {known} (see 'python main.py envs list')")
    return importlib.import_module(_MODULES[name])


def names() -> tuple[str, ...]:
    """Every environment name, phobia environments first, the safe place last."""
    return tuple(n for n in _MODULES if _module_exists(n))


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(_MODULES[name]) is not None


def info(name: str) -> EnvironmentInfo:
    """Describe one environment; :class:`UnknownEnvironmentError` lists the known names."""
    mod = _module(name)
    levels = tuple(LevelInfo(i, title, desc) for i, (title, desc) in enumerate(mod.LEVELS))
    return EnvironmentInfo(name=mod.NAME, title=mod.TITLE, kind=mod.KIND, levels=levels, dials=tuple(mod.DIALS))


def check_level(name: str, level: int) -> None:
    """Raise :class:`LevelOutOfRangeError` unless ``level`` is one of the environment's described levels."""
    env = info(name)
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= env.max_level:
        raise LevelOutOfRangeError(
            f"level {level!r} is out of range for environment {name!r}: use 0..{env.max_level}"
        )


def build(name: str, level: int, intensity: float = 0.0, dials: tuple[tuple[str, float], ...] = ()):
    """Build the instance arrays of one level (renderer use; the level is clamped, unknown dials are logged)."""
    mod = _module(name)
    level = min(max(int(level), 0), len(mod.LEVELS) - 1)
    for dial, _ in dials:
        if dial not in mod.DIALS:
            log.warning("environment %s has no dial %r (known: %s); ignored", name, dial, ", ".join(mod.DIALS))
    return mod.build(level, intensity, dials)
