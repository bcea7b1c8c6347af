"""The sound engine: follows the latest SceneState a few times a second and keeps the mixer's targets on it.

It runs on its own thread (never on the render loop's per-frame path): at
``rate_hz`` (default 8) it reads :class:`SceneStateBox` (a reference read, like
the render loop), and when the scene changed it works out the environment's
dial values exactly as the renderer does (``registry.dial_values``: the level,
eased towards the next by ``intensity``, the therapist's overrides), asks
:func:`soundscape_for` for the layers, and hands them to the :class:`Mixer`,
which ramps every gain over ``ramp_s`` (>= 0.3 s) and crossfades changed
buffers. New buffers are synthesised here, on this thread, so the audio
callback only mixes.

Volume: ``master_volume`` and each environment's volume (0..1, perceptual taper,
see :func:`volume_to_gain`) multiply every layer; a scene fading out
(``SceneState.fade``) fades the sound with it. With ``safe_place`` set, the safe
environment sounds (a phobia environment named there gives the default safe
place, as on screen). While the scene shows a breathing pacer
(``breath_phase``), relaxation and safe environments add the pacer's tone,
locked to that phase.

Without an audio device the engine logs that once and runs anyway with a
:class:`NullOutput`: the same targets, nothing played, nothing raised.

Wiring (one object per session, beside the render loop)::

    engine = SoundEngine(scene_box)   # the same SceneStateBox the render loop reads
    engine.start()
    ...
    engine.stop()
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from environments.errors import RenderError
from environments.scene_state import SceneState, SceneStateBox
from environments.sound.mixer import DEFAULT_RAMP_S, Mixer
from environments.sound.output import AudioOutput, NullOutput, open_output
from environments.sound.soundscape import Layer, soundscape_for, volume_to_gain

log = logging.getLogger(__name__)

MIN_RAMP_S = 0.3


def _check_volume(what: str, volume: float) -> float:
    """A volume as a float in 0..1, or a ValueError that says what was wrong."""
    try:
        v = float(volume)
    except (TypeError, ValueError):
        raise ValueError(f"{what} = {volume!r}: use a number in 0..1 (1 = full, 0.5 = -20 dB, 0 = silent)") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{what} = {volume!r} is out of range: use 0..1 (1 = full, 0.5 = -20 dB, 0 = silent)")
    return v


class SoundEngine:
    """Plays the soundscape of whatever ``scene`` shows; ``start``/``stop`` from any thread."""

    def __init__(self, scene: SceneStateBox, *, master_volume: float = 1.0,
                 environment_volume: Mapping[str, float] | None = None, rate_hz: float = 8.0,
                 ramp_s: float = DEFAULT_RAMP_S, output: AudioOutput | str = "auto",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(rate_hz) and 0.5 <= rate_hz <= 50.0):
            raise ValueError(f"rate_hz = {rate_hz!r}: use 0.5..50 updates per second (5-10 is plenty)")
        if not (math.isfinite(ramp_s) and ramp_s >= MIN_RAMP_S):
            raise ValueError(f"ramp_s = {ramp_s!r}: gains must ramp over >= {MIN_RAMP_S} s so changes never pop")
        self.scene = scene
        self.rate_hz = float(rate_hz)
        self.mixer = Mixer(ramp_s=ramp_s)
        self._output_request = output
        self.output: AudioOutput = output if not isinstance(output, str) else NullOutput("not started")
        self._clock = clock
        self._lock = threading.Lock()
        self._master = _check_volume("master_volume", master_volume)
        self._env_volume = {k: _check_volume(f"volume of {k!r}", v) for k, v in (environment_volume or {}).items()}
        self._volume_seq = 0
        self._applied: tuple[object, int] | None = None  # (state, volume_seq) last handed to the mixer
        self._resolved: tuple[SceneState, str, int, dict[str, float]] | None = None
        self._breath_seen: tuple[float, float] | None = None  # (phase, clock) of the last new phase
        self._breath_rate_hz: float | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._errors = 0
        self.layers: list[Layer] = []  # the layers last asked for (for the console and tests)
        self.environment: str | None = None

    # ------------------------------------------------------------------ volume (any thread)
    def set_master_volume(self, volume: float) -> None:
        """Master volume 0..1 (1 = 0 dB, 0.5 = -20 dB, 0 = silent); ramped in at the next update."""
        volume = _check_volume("master_volume", volume)
        with self._lock:
            self._master = volume
            self._volume_seq += 1

    def set_environment_volume(self, environment: str, volume: float) -> None:
        """One environment's volume 0..1, on top of the master volume."""
        volume = _check_volume(f"volume of {environment!r}", volume)
        with self._lock:
            self._env_volume[environment] = volume
            self._volume_seq += 1

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Open the audio output (or the silent one) and start following the scene on a background thread.

        Returns at once: the first soundscape is made on that thread and fades in.
        """
        if self._thread is not None:
            return
        if isinstance(self._output_request, str):
            self.output = open_output(self._output_request)
        try:
            self.output.start(self.mixer.render)
        except Exception as exc:
            log.info("sound: the audio output would not start (%s); sound is off", exc)
            self.output = NullOutput(f"the audio output would not start ({exc})")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vrex-sound", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop following the scene and close the output; safe to call twice or without start."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        self.output.stop()

    def __enter__(self) -> SoundEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        # The first update runs here too: making its buffers takes a moment, and start() must not wait for it.
        period = 1.0 / self.rate_hz
        wait = 0.0
        while not self._stop.wait(wait):
            wait = period
            try:
                self.update()
            except Exception:
                self._errors += 1
                if self._errors == 1:
                    log.exception("sound: updating from the scene failed; the sound keeps its last targets")

    # ------------------------------------------------------------------ one update (the engine's thread; tests)
    def update(self) -> None:
        """Read the latest scene state and retarget the mixer if it (or a volume) changed; report the breath."""
        state = self.scene.get()
        with self._lock:
            vseq, master, env_volume = self._volume_seq, self._master, dict(self._env_volume)
        if self._resolved is None or self._resolved[0] is not state:  # once per state, not per poll
            self._resolved = (state, *self._resolve(state))
        _, env, level, values = self._resolved
        self._follow_breath(state, values.get("breaths_per_min"))
        if self._applied is not None and self._applied[0] is state and self._applied[1] == vseq:
            return
        layers = soundscape_for(env, values, level, pacer=state.breath_phase is not None)
        fade = min(max(float(state.fade), 0.0), 1.0) if math.isfinite(state.fade) else 0.0
        gain = volume_to_gain(master) * volume_to_gain(env_volume.get(env, 1.0)) * (1.0 - fade)
        self.mixer.set_layers(layers, gain)
        if env != self.environment and not layers:
            log.debug("sound: environment %r has no soundscape; silent", env)
        self.layers, self.environment = layers, env
        self._applied = (state, vseq)

    def target_gains(self) -> dict[str, float]:
        """Each layer's target gain in the mixer (master and environment volume and fade included)."""
        return self.mixer.target_gains()

    @staticmethod
    def _resolve(state: SceneState) -> tuple[str, int, dict[str, float]]:
        """The environment that sounds, its level and its dial values (as the renderer resolves them)."""
        from environments import registry

        env, level = state.environment, int(state.level)
        try:
            kind = registry.get(env).kind
        except RenderError:
            kind = ""
        if state.safe_place:
            if kind == "phobia":
                env = registry.DEFAULT_SAFE_ENVIRONMENT
            level = 0
        try:
            values = registry.dial_values(env, level, 0.0 if state.safe_place else state.intensity,
                                          () if state.safe_place else state.dials)
        except RenderError:  # not installed (yet): the state's own overrides are all there is
            values = {k: float(v) for k, v in state.dials}
        return env, level, values

    def _follow_breath(self, state: SceneState, breaths_per_min: float | None) -> None:
        """Tell the mixer the pacer's phase, with its rate (the ``breaths_per_min`` dial, else measured)."""
        phase = state.breath_phase
        if phase is None or not math.isfinite(phase):
            self._breath_seen = None
            return
        phase = phase % 1.0
        now = self._clock()
        rate = None
        if breaths_per_min is not None and math.isfinite(breaths_per_min) and breaths_per_min > 0:
            rate = float(breaths_per_min) / 60.0
        seen = self._breath_seen
        if seen is None or phase != seen[0]:
            if rate is None and seen is not None and now > seen[1]:
                step = (phase - seen[0]) % 1.0
                if step < 0.25:  # forward, not a restart: measure the rate
                    measured = step / (now - seen[1])
                    if 3.0 / 60 / 2 <= measured <= 12.0 / 60 * 2:
                        prev = self._breath_rate_hz
                        self._breath_rate_hz = measured if prev is None else 0.8 * prev + 0.2 * measured
            self._breath_seen = (phase, now)
            self.mixer.set_breath(phase, rate if rate is not None else self._breath_rate_hz)
