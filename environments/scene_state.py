"""What the renderer shows and what the patient did: the two records between therapy and rendering.

The therapy runtime publishes a new :class:`SceneState` (immutable) whenever
something changes; the render loop reads the latest one each frame through a
:class:`SceneStateBox` and never waits for the runtime. Patient actions flow
back as :class:`PatientInput` records.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SceneState:
    """Everything one frame needs to know.

    ``level`` is the described level (0 = mildest); ``intensity`` is 0..1, how
    far the scene has moved from ``level`` towards ``level + 1`` (0 = exactly
    the level as described), so a level change is shown gradually. ``dials``
    override individual dials of the level as (name, value) pairs: the renderer
    eases every dial change in (nothing pops) and clamps values to the dial's
    range; requests are checked earlier with ``registry.validate_dial``. With
    ``safe_place`` set, ``environment`` names the safe environment to show (the
    protocol's); a phobia environment there shows the default safe place. ``fade`` is 0
    (clear) to 1 (fully ``fade_rgb``). ``panel_text`` is shown on a world-space
    panel in front of the patient (SUDS prompt, messages); ``suds_prompt`` is
    true while an answer is awaited. ``breath_phase`` is 0..1 of the pacer's
    cycle or ``None`` when no pacer is shown. ``seq`` increases with every
    published state.
    """

    environment: str
    level: int
    t_s: float = 0.0
    intensity: float = 0.0
    dials: tuple[tuple[str, float], ...] = ()
    fade: float = 0.0
    fade_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    panel_text: str | None = None
    suds_prompt: bool = False
    breath_phase: float | None = None
    safe_place: bool = False
    seq: int = 0


class InputKind(enum.Enum):
    """What a patient can do from the headset, the desktop window or a controller."""

    SUDS = "suds"  # value = 0..100
    STOP = "stop"  # the patient asks to stop: go to the safe place now
    PAUSE = "pause"
    TRIGGER = "trigger"
    GRIP = "grip"
    MENU = "menu"
    QUIT = "quit"  # the window was closed


@dataclass(frozen=True, slots=True)
class PatientInput:
    """One patient action, timestamped on the display's clock."""

    t_s: float
    kind: InputKind
    value: float | None = None
    source: str = ""


@dataclass
class SceneStateBox:
    """Holds the latest :class:`SceneState`; writers swap it atomically, readers never block on logic."""

    _state: SceneState
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self) -> SceneState:
        return self._state  # a reference read is atomic; the record itself is immutable

    def put(self, state: SceneState) -> None:
        with self._lock:
            self._state = state
