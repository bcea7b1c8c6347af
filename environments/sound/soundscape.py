"""Which sounds an environment makes at a level and a setting of its dials, and how loud.

:func:`soundscape_for` maps (environment, dial values, level) to a list of
:class:`Layer`: a named looping buffer (a :class:`~environments.sound.synth.SoundSpec`)
and a linear gain. Loudness follows the fear-relevant dials (wind louder and
gustier with height, a denser murmur with a fuller hall, more barking with a
more active dog, a louder rustle the nearer and more numerous the spiders);
the buffers' *character* parameters are quantised (quarters) so that small dial
movements only move gains, and a change of character is a crossfade between
two cached buffers.

Environments are mapped by name. Those that do not exist yet (``enclosed``,
``public_speaking``, ``dogs``, ``beach``, ``forest``) are mapped already: their
mapping reads the dials it knows by several likely names (see each function)
and otherwise follows the level's place in the hierarchy. Unknown environments
are silent (an empty list).

Volume: ``volume`` values are 0..1 on a perceptual taper (:func:`volume_to_gain`):
1 is 0 dB, each 0.1 below it is -4 dB (0.5 is -20 dB), 0 is silence. An
environment may declare a ``volume`` dial (0..1); the sound engine adds a master
volume and a per-environment volume on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from environments.sound.synth import DEFAULT_SECONDS, SoundSpec

VOLUME_RANGE_DB = 40.0  # volume 0.01 is -39.6 dB; 0 is silence
# Every mapping's levels are relative; this sets where they sit at full volume: the loudest soundscapes
# (wind on the roof edge, a barking dog close by) near -12 dBFS RMS, quiet rooms near -50 dBFS.
CALIBRATION_DB = 10.0
ASSUMED_TOP_LEVEL = 11  # for a mapped environment not installed yet: levels 0..11
PACER = SoundSpec("pacer")  # made live by the mixer (it follows SceneState.breath_phase), not a buffer


@dataclass(frozen=True, slots=True)
class Layer:
    """One sound of a soundscape: its name (what a crossfade follows), its buffer and its linear gain."""

    name: str
    spec: SoundSpec
    gain: float


def db_to_gain(db: float) -> float:
    """Linear amplitude for a level in dB (0 dB = 1)."""
    return 10.0 ** (db / 20.0)


def volume_to_gain(volume: float) -> float:
    """A 0..1 volume on a perceptual taper: 1 -> 1.0 (0 dB), 0.5 -> 0.1 (-20 dB), 0 -> 0.0 (silence)."""
    v = min(max(float(volume), 0.0), 1.0) if math.isfinite(volume) else 1.0
    return 0.0 if v <= 0.0 else db_to_gain(-VOLUME_RANGE_DB * (1.0 - v))


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return min(max(float(x), lo), hi)


def _q(x: float, steps: int = 4) -> float:
    """Quantise 0..1 to ``steps`` steps: the character parameters of a buffer (so buffers are reused)."""
    return round(_clamp(x) * steps) / steps


class _Dials:
    """Reads an environment's dial values by one of several names, normalised to 0..1 by the dial's range.

    The range comes from the registered environment's declaration when it has
    that dial, else from the ``assumed`` range given by the mapping.
    """

    def __init__(self, environment: str, values: Mapping[str, float], level: int) -> None:
        self.values = values
        self.env = _registered(environment)
        top = (len(self.env.levels) - 1) if self.env is not None else ASSUMED_TOP_LEVEL
        self.level_frac = _clamp(level / top) if top > 0 else 0.0

    def raw(self, names: tuple[str, ...], default: float) -> float:
        for n in names:
            if n in self.values:
                return float(self.values[n])
        return default

    def frac(self, names: tuple[str, ...], assumed: tuple[float, float], default: float) -> float:
        """0..1 position of the first dial found among ``names`` in its range; ``default`` when none is set."""
        for n in names:
            if n in self.values:
                lo, hi = assumed
                if self.env is not None:
                    try:
                        d = self.env.dial(n)
                        lo, hi = d.min, d.max
                    except KeyError:
                        pass
                return _clamp((float(self.values[n]) - lo) / (hi - lo)) if hi > lo else 0.0
        return default


def _registered(name: str):
    """The installed environment called ``name``, or None (not installed yet, or unknown)."""
    from environments import registry  # late: the registry scans the scene modules
    from environments.errors import RenderError

    try:
        return registry.get(name)
    except RenderError:
        return None


def _proximity_db(distance_m: float, ref_m: float, floor_m: float = 0.3) -> float:
    """Inverse-distance level (dB) of a source at ``distance_m`` relative to one at ``ref_m``."""
    return 20.0 * math.log10(ref_m / max(distance_m, floor_m))


# ---------------------------------------------------------------------------------------------- per environment
def _heights(d: _Dials) -> list[Layer]:
    """Wind rises and gusts with height (and the ``wind`` dial, and nearness to the edge); the city's
    traffic hum fades as the plaza drops away."""
    h = d.frac(("height_m",), (0.0, 160.0), d.level_frac)
    wind = d.frac(("wind",), (0.0, 1.0), 0.1)
    edge = d.frac(("edge_m",), (0.1, 8.0), 0.5)
    strength = _clamp(0.12 + 0.55 * h + 0.25 * wind + 0.08 * (1.0 - edge))
    return [
        Layer("wind", SoundSpec("wind", (("strength", _q(strength)), ("gust", _q(wind)))),
              db_to_gain(-34.0 + 30.0 * strength)),
        Layer("city", SoundSpec("city"), db_to_gain(-24.0 - 16.0 * h)),
    ]


def _spiders(d: _Dials) -> list[Layer]:
    """Leg taps louder and busier with more, nearer, faster spiders; muffled in the glass box, silent when
    the spider is only a picture; the room's quiet air always."""
    count = d.raw(("count",), 1.0)
    dist = d.raw(("distance_m",), 2.5)
    speed = d.frac(("speed",), (0.0, 1.0), 0.0)
    contained = d.frac(("contained",), (0.0, 1.0), 0.0)
    picture = d.frac(("picture",), (0.0, 1.0), 0.0)
    activity = _clamp(0.15 + 0.85 * speed)
    db = -30.0 + 8.0 * math.log10(max(count, 1.0)) + min(8.0, 0.6 * _proximity_db(dist, 2.5)) + 6.0 * speed
    gain = db_to_gain(db) * (1.0 - 0.85 * contained) * (1.0 - picture)
    layers = [Layer("room", SoundSpec("room"), db_to_gain(-42.0))]
    if gain > 0.0:
        layers.append(Layer("rustle", SoundSpec("rustle", (("activity", _q(activity)),)), gain))
    return layers


def _enclosed(d: _Dials) -> list[Layer]:
    """A lift or small room: the light's hum and the fan grow closer as the space shuts in; the lift motor
    runs while it moves (``moving``/``lift_moving``, else the middle of the hierarchy); when it stalls
    (``stalled``, else the top of the hierarchy) the motor stops and the shaft creaks."""
    if d.env is not None and "width_m" in d.values:  # the lift: smaller, lower, shut = closer
        shut = 1.0 - d.frac(("door_open_fraction",), (0.0, 1.0), 1.0)
        small = 1.0 - (d.frac(("width_m",), (0.9, 3.5), 1.0) + d.frac(("depth_m",), (0.9, 3.5), 1.0)
                       + d.frac(("ceiling_m",), (1.85, 3.2), 1.0)) / 3.0
        close = _clamp(0.5 * shut + 0.5 * small)
    else:
        close = d.frac(("closeness", "enclosure", "door_closed", "door"), (0.0, 1.0), d.level_frac)
    stalled = d.frac(("stalled", "stall"), (0.0, 1.0), 1.0 if d.level_frac >= 0.8 else 0.0)
    moving = d.frac(("moving", "lift_moving", "motion"), (0.0, 1.0),
                    1.0 if 0.35 <= d.level_frac < 0.8 else 0.0) * (1.0 - stalled)
    layers = [Layer("hum", SoundSpec("hum", (("close", _q(close)), ("motor", _q(moving, 1)))),
                    db_to_gain(-32.0 + 14.0 * close))]
    if stalled > 0.0:
        layers.append(Layer("creaks", SoundSpec("creaks", (("tension", _q(close)),)), db_to_gain(-30.0) * stalled))
    return layers


def _public_speaking(d: _Dials) -> list[Layer]:
    """An audience's murmur: more voices, blurring into babble, as the hall fills (``audience``, ``audience_size``,
    ``people``, ``count``); more talk, coughs and shuffles as it stops listening (``attention`` falls, or
    ``boredom``/``criticism`` rises); the hall's air under it."""
    density = d.frac(("audience", "audience_size", "audience_count", "people", "count"), (0.0, 200.0),
                     d.level_frac)
    attention = d.frac(("attention", "attentive", "interest"), (0.0, 1.0), -1.0)
    talk = (1.0 - attention) if attention >= 0.0 else d.frac(
        ("boredom", "bored", "criticism", "critical", "hostility"), (0.0, 1.0), 0.25 + 0.5 * d.level_frac)
    return [
        Layer("murmur", SoundSpec("murmur", (("density", _q(density)), ("talk", _q(talk)))),
              db_to_gain(-38.0 + 20.0 * density + 6.0 * talk)),
        Layer("room", SoundSpec("room"), db_to_gain(-40.0)),
    ]


def _dogs(d: _Dials) -> list[Layer]:
    """Barking more often, in longer runs, and quicker panting as the dog gets more active (``activity``,
    ``barking``, ``agitation``, ``energy``; else the level), louder as it comes nearer (``distance_m``),
    deeper for a bigger dog (``size``); leaves rustle in a park behind."""
    act = max(d.frac(("activity", "agitation", "energy", "arousal"), (0.0, 1.0), d.level_frac),
              d.frac(("barking",), (0.0, 1.0), 0.0))  # a barking dog barks even when it stands still
    size = d.frac(("dog_size_m", "size", "dog_size", "size_m"), (0.0, 1.0), 0.5)
    dist = d.raw(("distance_m", "distance"), 3.0)
    count = d.raw(("count", "dogs"), 1.0)
    db = -32.0 + 14.0 * act + min(6.0, 0.6 * _proximity_db(dist, 3.0, 0.5)) + 4.0 * math.log10(max(count, 1.0))
    picture = d.frac(("picture",), (0.0, 1.0), 0.0)  # a photo of a dog makes no sound
    return [
        Layer("dogs", SoundSpec("dogs", (("activity", _q(act)), ("size", _q(size)))), db_to_gain(db) * (1 - picture)),
        Layer("leaves", SoundSpec("leaves", (("breeze", 0.25),)), db_to_gain(-34.0)),  # the park, dog or no dog
    ]


def _calm(d: _Dials) -> float:
    """The relaxation scenes' calm response (0..1): what the session drives from biofeedback."""
    return d.frac(("calm", "calm_response", "calmness"), (0.0, 1.0), 0.0)


def _beach(d: _Dials) -> list[Layer]:
    """Surf breaking and washing up the sand; the waves settle (smaller, softer) as the calm response grows."""
    waves = d.frac(("waves", "wave_height", "sea", "breeze"), (0.0, 1.0), 0.5) * (1.0 - 0.6 * _calm(d))
    return [
        Layer("surf", SoundSpec("surf", (("waves", _q(waves)),), seconds=14.0), db_to_gain(-24.0 + 8.0 * waves)),
        Layer("wind", SoundSpec("wind", (("strength", 0.0), ("gust", 0.25))), db_to_gain(-40.0)),
    ]


def _forest(d: _Dials) -> list[Layer]:
    """Birdsong around a clearing and leaves in the breeze; the breeze settles as the calm response grows."""
    breeze = d.frac(("wind", "breeze"), (0.0, 1.0), 0.4) * (1.0 - 0.5 * _calm(d))
    birds = d.frac(("birds",), (0.0, 1.0), 0.5)
    return [
        Layer("birds", SoundSpec("birds", (("birds", _q(birds)),), seconds=8.0), db_to_gain(-28.0 + 4.0 * birds)),
        Layer("leaves", SoundSpec("leaves", (("breeze", _q(breeze)),)), db_to_gain(-36.0 + 10.0 * breeze)),
    ]


def _safe_place(d: _Dials) -> list[Layer]:
    """The lakeside meadow: water lapping at the jetty, a few distant birds, a faint breeze in the trees."""
    light = d.frac(("light",), (0.2, 1.5), 0.6)
    return [
        Layer("lake", SoundSpec("lake"), db_to_gain(-30.0)),
        Layer("birds", SoundSpec("birds", (("birds", 0.25),), seconds=8.0), db_to_gain(-38.0 + 6.0 * light)),
        Layer("leaves", SoundSpec("leaves", (("breeze", 0.25),)), db_to_gain(-40.0)),
    ]


#: environment name -> (kind, mapping). The kind decides whether the breathing pacer is heard.
SOUNDSCAPES: dict[str, tuple[str, Callable[[_Dials], list[Layer]]]] = {
    "heights": ("phobia", _heights),
    "spiders": ("phobia", _spiders),
    "enclosed": ("phobia", _enclosed),
    "public_speaking": ("phobia", _public_speaking),
    "dogs": ("phobia", _dogs),
    "beach": ("relaxation", _beach),
    "forest": ("relaxation", _forest),
    "safe_place": ("safe", _safe_place),
}
PACER_KINDS = ("relaxation", "safe")
PACER_GAIN_DB = -30.0  # soft: heard over the lake, never above it by much


def soundscape_for(environment_name: str, dial_values: Mapping[str, float], level: int, *,
                   pacer: bool = False) -> list[Layer]:
    """The layers (name, buffer, gain) ``environment_name`` sounds like at ``level`` with ``dial_values``.

    ``dial_values`` are the environment's dial values as the scene shows them
    (``registry.dial_values``); dials it lacks take the mapping's defaults.
    ``pacer`` (the scene shows a breathing pacer) adds the pacer's soft tone in
    relaxation and safe environments. A ``volume`` dial (0..1) scales every
    layer. Unknown environments give ``[]`` (silence).
    """
    entry = SOUNDSCAPES.get(environment_name)
    if entry is None:
        return []
    kind, mapping = entry
    layers = mapping(_Dials(environment_name, dial_values, int(level)))
    if pacer and kind in PACER_KINDS:
        layers.append(Layer("pacer", PACER, db_to_gain(PACER_GAIN_DB)))
    g = db_to_gain(CALIBRATION_DB)
    if "volume" in dial_values:
        g *= volume_to_gain(float(dial_values["volume"]))
    return [Layer(x.name, x.spec, x.gain * g) for x in layers]


def mapped_environments() -> tuple[str, ...]:
    """Every environment name with a soundscape (installed or not yet)."""
    return tuple(SOUNDSCAPES)


__all__ = [
    "DEFAULT_SECONDS",
    "PACER",
    "SOUNDSCAPES",
    "Layer",
    "db_to_gain",
    "mapped_environments",
    "soundscape_for",
    "volume_to_gain",
]
