"""Mixes the soundscape's looping layers into stereo blocks, ramping every gain change (no pops).

The :class:`Mixer` is pure numpy and knows no audio device: the output
callback asks it for the next block (:meth:`Mixer.render`), tests and the
offline renderer do the same. :meth:`Mixer.set_layers` (from the sound engine's
thread) sets new targets; each gain then moves in a straight line to its target
over ``ramp_s`` (default 0.5 s), sample by sample. A layer whose buffer changes
(a new character, e.g. gustier wind) crossfades: the old buffer ramps out while
the new one ramps in. The breathing pacer is not a buffer: its tone is made
block by block, following the breath phase the engine reports.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import numpy as np

from environments.sound.soundscape import PACER, Layer
from environments.sound.synth import (
    CHANNELS,
    PACER_BASE_HZ,
    PACER_GLIDE,
    SAMPLE_RATE,
    SoundSpec,
    breath_curve,
    pacer_tone,
    synthesize,
)

DEFAULT_RAMP_S = 0.5
DEFAULT_BREATHS_PER_MIN = 6.0
LIMIT_KNEE = 0.5  # the soft limiter is exactly linear below this amplitude


class _Voice:
    """One playing layer: a looping buffer (or the pacer), its read position and its ramping gain."""

    __slots__ = ("buf", "gain", "name", "pos", "spec", "step", "target")

    def __init__(self, name: str, spec: SoundSpec, buf: np.ndarray | None) -> None:
        self.name, self.spec, self.buf = name, spec, buf
        self.pos = 0
        self.gain = 0.0
        self.target = 0.0
        self.step = 0.0

    def retarget(self, target: float, ramp_frames: int) -> None:
        if target != self.target:
            self.target = target
            self.step = (target - self.gain) / max(1, ramp_frames)

    def gains(self, n: int) -> np.ndarray:
        """This block's per-sample gains (a straight ramp, stopping at the target); advances the gain."""
        if self.gain == self.target:
            return np.full(n, self.gain)
        g = self.gain + self.step * np.arange(1, n + 1)
        g = np.minimum(g, self.target) if self.step > 0 else np.maximum(g, self.target)
        self.gain = float(g[-1])
        return g


def soft_limit(x: np.ndarray) -> np.ndarray:
    """Linear below :data:`LIMIT_KNEE`, then a tanh knee that never exceeds 1: no hard clipping when layers pile up."""
    a = np.abs(x)
    over = a > LIMIT_KNEE
    if over.any():
        k = 1.0 - LIMIT_KNEE
        x = np.where(over, np.sign(x) * (LIMIT_KNEE + k * np.tanh((a - LIMIT_KNEE) / k)), x)
    return x


class Mixer:
    """Mixes looping layers into (frames, 2) float32 blocks; thread-safe between one writer and the audio callback."""

    def __init__(self, *, sample_rate: int = SAMPLE_RATE, ramp_s: float = DEFAULT_RAMP_S,
                 buffers: Callable[[SoundSpec], np.ndarray] = synthesize) -> None:
        self.sample_rate = sample_rate
        self.ramp_s = float(ramp_s)
        self._buffers = buffers
        self._voices: list[_Voice] = []
        self._lock = threading.Lock()
        self.frames_rendered = 0
        # the pacer: breath phase (0..1) and its rate, the tone oscillator's phase, and the last report
        self._breath_phase = 0.0
        self._breath_rate_hz = DEFAULT_BREATHS_PER_MIN / 60.0
        self._osc = 0.0
        self._reported: tuple[float, float, int] | None = None  # (phase, rate_hz, at frame)

    # ------------------------------------------------------------------ writer side (the engine's thread)
    def set_layers(self, layers: Sequence[Layer], gain: float = 1.0) -> None:
        """Make ``layers`` (each at ``layer.gain * gain``) what plays, ramping from what plays now.

        Buffers are made here (on the caller's thread, cached), never in the audio callback.
        """
        wanted: dict[str, tuple[SoundSpec, float, np.ndarray | None]] = {}
        for layer in layers:
            buf = None if layer.spec == PACER else self._buffers(layer.spec)
            g = max(0.0, float(layer.gain) * float(gain))
            wanted[layer.name] = (layer.spec, g if math.isfinite(g) else 0.0, buf)
        ramp = int(round(self.ramp_s * self.sample_rate))
        with self._lock:
            voices = list(self._voices)
            for v in voices:
                w = wanted.get(v.name)
                v.retarget(w[1] if w is not None and w[0] == v.spec else 0.0, ramp)
            for name, (spec, g, buf) in wanted.items():
                if not any(v.name == name and v.spec == spec for v in voices):
                    v = _Voice(name, spec, buf)
                    if buf is not None and voices:  # start where a crossfaded predecessor would be, in time
                        v.pos = self.frames_rendered % buf.shape[0]
                    v.retarget(g, ramp)
                    voices.append(v)
            self._voices = voices

    def set_breath(self, phase: float | None, rate_hz: float | None = None) -> None:
        """The pacer's breath phase (0..1) as the scene shows it now, and its rate; the tone follows it."""
        with self._lock:
            if rate_hz is not None and math.isfinite(rate_hz) and rate_hz > 0:
                self._breath_rate_hz = float(rate_hz)
            if phase is not None and math.isfinite(phase):
                self._reported = (float(phase) % 1.0, self._breath_rate_hz, self.frames_rendered)

    def target_gains(self) -> dict[str, float]:
        """Each layer's target gain (the sum over its buffers while one crossfades into another)."""
        with self._lock:
            out: dict[str, float] = {}
            for v in self._voices:
                out[v.name] = out.get(v.name, 0.0) + v.target
            return out

    def current_gains(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = {}
            for v in self._voices:
                out[v.name] = out.get(v.name, 0.0) + v.gain
            return out

    @property
    def settled(self) -> bool:
        """True when every gain has reached its target."""
        with self._lock:
            return all(v.gain == v.target for v in self._voices)

    # ------------------------------------------------------------------ reader side (the audio callback)
    def render(self, frames: int, *, limit: bool = True) -> np.ndarray:
        """The next ``frames`` stereo frames, float32 in -1..1 (soft-limited unless ``limit`` is False)."""
        out = np.zeros((frames, CHANNELS))
        with self._lock:
            voices = self._voices
            for v in voices:
                g = v.gains(frames)
                if not g.any():
                    continue
                if v.buf is None:
                    out += (self._pacer(frames) * g)[:, None]
                    continue
                n = v.buf.shape[0]
                idx = (v.pos + np.arange(frames)) % n
                out += v.buf[idx] * g[:, None]
            for v in voices:
                if v.buf is not None:
                    v.pos = (v.pos + frames) % v.buf.shape[0]
            self._voices = [v for v in voices if v.gain != 0.0 or v.target != 0.0]
            if not any(v.buf is None for v in self._voices):
                self._advance_breath(frames)
            self.frames_rendered += frames
        return (soft_limit(out) if limit else out).astype(np.float32)

    def _breath_target(self) -> float | None:
        if self._reported is None:
            return None
        phase, rate, at = self._reported
        return (phase + rate * (self.frames_rendered - at) / self.sample_rate) % 1.0

    def _advance_breath(self, frames: int) -> np.ndarray:
        """This block's breath phases, pulled towards the scene's reported phase.

        The correction is spread over the block as a small change of rate, so
        the phase (and the tone's loudness) never steps: a small error closes
        over about 1 s, a large one (a new pacer) over about 0.3 s.
        """
        delta = 0.0
        target = self._breath_target()
        if target is not None:
            err = (target - self._breath_phase + 0.5) % 1.0 - 0.5
            tau_s = 1.0 if abs(err) <= 0.15 else 0.3
            delta = err * min(1.0, frames / (tau_s * self.sample_rate))
        inc = self._breath_rate_hz * frames / self.sample_rate + delta
        ph = self._breath_phase + inc * np.arange(frames) / frames
        self._breath_phase = float((self._breath_phase + inc) % 1.0)
        return ph

    def _pacer(self, frames: int) -> np.ndarray:
        ph = self._advance_breath(frames)
        f = PACER_BASE_HZ * PACER_GLIDE ** breath_curve(ph)
        osc = self._osc + 2 * np.pi * np.cumsum(f) / self.sample_rate
        self._osc = float(osc[-1] % (2 * np.pi))
        return pacer_tone(ph, osc)


def render_offline(layers: Sequence[Layer], seconds: float, *, gain: float = 1.0,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The soundscape ``layers`` at their gains (no ramp in), ``seconds`` long: what a listener would hear."""
    m = Mixer(sample_rate=sample_rate, ramp_s=0.0)
    m.set_layers(layers, gain)
    return m.render(int(round(seconds * sample_rate)))
