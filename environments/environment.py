"""The one interface every environment implements, and how to add a new one.

An environment is what the patient is exposed to (a phobia), relaxes in
(relaxation) or returns to (safe). It declares its **dials** (the things a
therapist can turn, each with a unit and a range), its **levels** (the
described steps of the fear hierarchy, each a named setting of the dials),
how to **build** the scene for any setting of the dials, and any **shader or
material** code of its own. The renderer, the registry, the CLI and the
therapy runtime know environments only through this interface.

How to add an environment
-------------------------
1. Write one module (or a package with an ``__init__``) that defines a subclass
   of :class:`Environment` and exposes an instance as ``ENVIRONMENT``::

       from environments.environment import Dial, Environment, Level
       from environments.scene_build import InstanceSet, SceneBuild, SceneLook

       class Lighthouse(Environment):
           name = "lighthouse"
           title = "Heights: lighthouse gallery"
           kind = "phobia"                      # or "relaxation" / "safe"
           targets = ("acrophobia",)
           dials = (Dial("height_m", "m", 0.0, 60.0, 0.0, True, "how far above the rocks the gallery is"),)
           levels = tuple(Level(f"{h:.0f} m up", f"On the gallery {h:.0f} m above the rocks ...", {"height_m": h})
                          for h in range(0, 60, 6))  # >= 10 described levels for a phobia

           def build(self, dials):             # dial name -> value, already eased and range-checked
               s = InstanceSet()
               s.add("cylinder", (0, dials["height_m"] / 2, -6), (4, dials["height_m"], 4), (0.9, 0.9, 0.88))
               return s.build(SceneLook(), (0.0, dials["height_m"], 0.0), gaze_pitch_rad=-0.4)

       ENVIRONMENT = Lighthouse()

2. Put it where the registry finds it: inside vrex, drop the module into
   ``environments/scenes/`` (a package scan picks it up); outside vrex (a
   clinic's own package), declare an entry point in that package's
   ``pyproject.toml``::

       [project.entry-points."vrex.environments"]
       lighthouse = "clinic_scenes.lighthouse:ENVIRONMENT"

   No vrex file is edited either way; ``python main.py envs list`` shows it.
3. Geometry: place instances of the shared unit meshes (cube, sphere, cylinder,
   cone) with :class:`environments.scene_build.InstanceSet`; the scene is then
   drawn with one instanced call per mesh. Things that move do so on the GPU
   (the ``motion`` column), never by rebuilding per frame.
4. Own materials and animation: give the class a :class:`EnvironmentShader`
   whose GLSL defines ``env_vertex`` (deforms a vertex, e.g. a leg's gait) and
   ``env_material`` (shades the pattern ids from :data:`ENV_MATERIAL_BASE` up).
   They are compiled into this environment's own programs only.
5. Give each level a view that frames what it is about: ``build`` returns
   ``gaze_pitch_rad`` / ``gaze_yaw_rad`` / ``view_fovy_deg`` (used by the
   desktop start view, ``envs render``, the gallery and the console's patient
   view; a headset's own pose replaces them).
6. Test it like the built-ins: ``tests/environments/test_environments.py``
   renders every registered environment at every level.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from environments.scene_build import SceneBuild

KINDS = ("phobia", "relaxation", "safe")
MIN_PHOBIA_LEVELS = 10

# Pattern ids below this are the shared materials of ``scene_build`` (plain, windows, glass, wood...);
# an environment's own materials use ids from here up and shade them in its ``env_material``.
ENV_MATERIAL_BASE = 16


@dataclass(frozen=True, slots=True)
class Dial:
    """One thing a therapist can turn: its unit, range, default and whether raising or lowering it frightens.

    ``fear_relevant`` marks the dials that grade the exposure (the hierarchy is
    built from them); ``fear_rises_with_value`` says which way (``distance_m``
    frightens more as it falls).
    """

    name: str
    unit: str
    min: float
    max: float
    default: float
    fear_relevant: bool
    description: str
    fear_rises_with_value: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min < self.max):
            raise ValueError(f"dial {self.name!r}: min {self.min!r} must be below max {self.max!r}")
        if not self.min <= self.default <= self.max:
            raise ValueError(f"dial {self.name!r}: default {self.default!r} outside {self.min}..{self.max}")

    @property
    def span(self) -> float:
        return self.max - self.min

    def describe_range(self) -> str:
        """``distance_m (m, 0.1..6)``: how error messages list a dial."""
        unit = f"{self.unit}, " if self.unit else ""
        return f"{self.name} ({unit}{self.min:g}..{self.max:g})"


@dataclass(frozen=True, slots=True)
class Level:
    """One described step of the hierarchy: what the patient sees, and the dial values that show it.

    Dials a level leaves out take their default.
    """

    title: str
    description: str
    dials: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnvironmentShader:
    """GLSL an environment adds to its own scene programs (never to another environment's).

    ``vertex`` defines ``void env_vertex(inout vec3 p, inout vec3 n, vec4 anim, float travelled, float t)``:
    ``p``/``n`` are the part's position and normal in its group's frame, ``anim`` the instance's
    free per-environment column (e.g. a leg's hip and gait phase), ``travelled`` the metres its
    group has moved, ``t`` the animation time. ``fragment`` defines
    ``bool env_material(float pattern, vec3 local, vec3 world, inout vec3 base, inout float spec_k,
    inout float shininess)`` and returns true when it shaded ``pattern`` (ids >= ENV_MATERIAL_BASE).
    Empty strings use the shared no-op versions.
    """

    vertex: str = ""
    fragment: str = ""


class Environment(abc.ABC):
    """An environment: identity, dials, described levels, scene build and its own shader code.

    Subclasses set the class attributes and implement :meth:`build`; the module
    exposes an instance as ``ENVIRONMENT`` (see this module's docstring).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    kind: ClassVar[str]  # "phobia", "relaxation" or "safe"
    targets: ClassVar[tuple[str, ...]] = ()  # what it treats or trains, e.g. ("arachnophobia",)
    dials: ClassVar[tuple[Dial, ...]]
    levels: ClassVar[tuple[Level, ...]]
    shader: ClassVar[EnvironmentShader] = EnvironmentShader()

    @abc.abstractmethod
    def build(self, dials: Mapping[str, float]) -> SceneBuild:
        """The scene for one setting of every dial (values within their ranges; called on changes only)."""

    # ------------------------------------------------------------------ derived, shared by every environment
    def dial(self, name: str) -> Dial:
        for d in self.dials:
            if d.name == name:
                return d
        raise KeyError(name)

    def level_values(self, level: int) -> dict[str, float]:
        """Every dial's value at a described level (defaults for the dials the level leaves out)."""
        values = {d.name: float(d.default) for d in self.dials}
        values.update({k: float(v) for k, v in self.levels[level].dials.items()})
        return values

    def check(self) -> None:
        """Raise ``ValueError`` naming what is wrong with this environment's declaration (registry use)."""
        where = f"environment {getattr(self, 'name', type(self).__name__)!r}"
        for attr in ("name", "title", "kind", "dials", "levels"):
            if not hasattr(self, attr):
                raise ValueError(f"{where} declares no {attr}")
        if not self.name.isidentifier():
            raise ValueError(f"{where}: the name must be an identifier (letters, digits, _)")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.levels:
            raise ValueError(f"{where} has no levels")
        if self.kind == "phobia" and len(self.levels) < MIN_PHOBIA_LEVELS:
            raise ValueError(f"{where}: a phobia environment needs >= {MIN_PHOBIA_LEVELS} described levels, "
                             f"has {len(self.levels)}")
        names = [d.name for d in self.dials]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: dial names repeat ({', '.join(names)})")
        for i, lv in enumerate(self.levels):
            for k, v in lv.dials.items():
                if k not in names:
                    raise ValueError(f"{where} level {i} sets unknown dial {k!r} (dials: {', '.join(names)})")
                d = self.dial(k)
                if not d.min <= v <= d.max:
                    raise ValueError(f"{where} level {i}: {k} = {v!r} is outside {d.min:g}..{d.max:g}")
