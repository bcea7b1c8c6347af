"""Procedural sound: seeded, seamlessly looping stereo buffers made with numpy (no recorded assets).

Every buffer is built *circularly*: noise is shaped in the frequency domain
(an inverse FFT of one period is periodic by construction), modulators are
periodic random signals of the same period, and short events (barks, chirps,
clicks) that run past the end wrap round to the start. So the sample after the
last one is the first one, as it would be in the middle of the buffer: the loop
seam has no click and no crossfade dip.

A buffer is described by a hashable :class:`SoundSpec` (kind, quantised
character parameters, length, seed) and made once per spec (:func:`synthesize`
caches the last few). Each buffer is normalised to :data:`REF_RMS` (or to peaks
of :data:`MAX_PEAK` if that is lower: sparse taps, one talker), so a layer's gain
alone sets how loud it is; its *character* (gustiness, density, how often a dog
barks) lives in the spec's parameters.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 44100
REF_RMS = 0.1  # every buffer's RMS (-20 dBFS): gains are relative to it
MAX_PEAK = 1.0  # ... unless that would put its peaks above this (then its peaks are scaled to it)
DEFAULT_SECONDS = 6.0
CHANNELS = 2


@dataclass(frozen=True, slots=True)
class SoundSpec:
    """What one looping buffer is: its generator (``kind``), character parameters, length and seed.

    ``params`` are (name, value) pairs, already quantised by the soundscape so
    that small dial movements reuse a cached buffer and only the layer's gain moves.
    """

    kind: str
    params: tuple[tuple[str, float], ...] = ()
    seconds: float = DEFAULT_SECONDS
    seed: int = 0

    def param(self, name: str, default: float = 0.0) -> float:
        for k, v in self.params:
            if k == name:
                return float(v)
        return default

    @property
    def frames(self) -> int:
        return int(round(self.seconds * SAMPLE_RATE))


# ---------------------------------------------------------------------------------------------- building blocks
def _freqs(n: int) -> np.ndarray:
    return np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)


def shaped_noise(rng: np.random.Generator, n: int, amp: Callable[[np.ndarray], np.ndarray],
                 channels: int = CHANNELS, shared: float = 0.3) -> np.ndarray:
    """Periodic noise of ``n`` frames whose magnitude spectrum is ``amp(freq_hz)``; (n, channels), unit RMS.

    ``shared`` is how much of the signal the channels have in common (1: mono in
    both ears, 0: fully decorrelated, a wide diffuse sound).
    """
    f = _freqs(n)
    a = np.asarray(amp(f), dtype=np.float64)
    a[0] = 0.0

    def one() -> np.ndarray:
        spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * a
        return np.fft.irfft(spec, n)

    common = one()
    out = np.empty((n, channels))
    for c in range(channels):
        out[:, c] = math.sqrt(shared) * common + math.sqrt(1.0 - shared) * one()
    rms = float(np.sqrt(np.mean(out ** 2)))
    return out / rms if rms > 0 else out


def filter_circular(x: np.ndarray, amp: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Filter a periodic signal (axis 0) by a zero-phase magnitude response ``amp(freq_hz)``; stays periodic."""
    n = x.shape[0]
    a = np.asarray(amp(_freqs(n)), dtype=np.float64)
    if x.ndim == 2:
        a = a[:, None]
    return np.fft.irfft(np.fft.rfft(x, axis=0) * a, n, axis=0)


LFO_DECIMATION = 63  # modulators are made at 700 Hz and interpolated: 882-frame loops divide evenly


def lfo(rng: np.random.Generator, n: int, max_hz: float) -> np.ndarray:
    """A smooth periodic random modulator of period ``n`` frames, mean 0, unit std, nothing above ``max_hz``.

    Made at a low rate (it has nothing above a few tens of hertz) and
    interpolated periodically, so a voice's many modulators cost little.
    """
    m = max(8, n // LFO_DECIMATION)
    f = np.fft.rfftfreq(m, LFO_DECIMATION / SAMPLE_RATE)
    spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * np.exp(-0.5 * (f / max_hz) ** 2)
    spec[0] = 0.0
    low = np.fft.irfft(spec, m)
    x = np.interp(np.arange(n) * (m / n), np.arange(m + 1), np.append(low, low[0]))
    sd = float(x.std())
    return x / sd if sd > 0 else x


def band(fc: float, octaves: float) -> Callable[[np.ndarray], np.ndarray]:
    """A bell-shaped band-pass around ``fc`` Hz, ``octaves`` wide (standard deviation in octaves)."""
    def amp(f: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            lo = np.log2(np.maximum(f, 1.0) / fc)
        return np.exp(-0.5 * (lo / octaves) ** 2)
    return amp


def lowpass(fc: float, order: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    return lambda f: 1.0 / np.sqrt(1.0 + (f / fc) ** (2 * order))


def highpass(fc: float, order: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    return lambda f: 1.0 / np.sqrt(1.0 + (fc / np.maximum(f, 1e-3)) ** (2 * order))


def add_event(out: np.ndarray, event: np.ndarray, start: int, pan: float = 0.0) -> None:
    """Add a mono ``event`` at frame ``start`` (wrapping round the loop), panned -1 (left) .. 1 (right)."""
    n = out.shape[0]
    m = min(event.size, n)
    idx = (start + np.arange(m)) % n
    left, right = math.cos((pan + 1) * math.pi / 4), math.sin((pan + 1) * math.pi / 4)
    out[idx, 0] += event[:m] * left * math.sqrt(2)
    out[idx, 1] += event[:m] * right * math.sqrt(2)


def _osc(f_hz: np.ndarray) -> np.ndarray:
    """Running phase (radians) of an oscillator whose frequency varies sample by sample."""
    return 2 * np.pi * np.cumsum(f_hz) / SAMPLE_RATE


def _osc_loop(f_hz: np.ndarray) -> np.ndarray:
    """Like :func:`_osc` for a whole loop: the frequency is nudged so the loop holds a whole number of cycles
    (the phase after the last frame is the first frame's phase: no seam)."""
    f = np.asarray(f_hz, dtype=np.float64)
    cycles = float(f.sum()) / SAMPLE_RATE
    return _osc(f * (max(1, round(cycles)) / cycles))


def _decay(n: int, attack_s: float, tau_s: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / tau_s)


def _window(n: int) -> np.ndarray:
    return np.hanning(n) if n > 2 else np.ones(n)


def _poisson_times(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Event start frames within the loop, on average ``rate_hz`` per second."""
    k = rng.poisson(rate_hz * n / SAMPLE_RATE)
    return np.sort(rng.integers(0, n, k))


# ---------------------------------------------------------------------------------------------- the sounds
def wind(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Wind at height: a low rumble and four noise bands whose gusts swell together; the higher bands
    (the whistle round the railing) grow with ``strength`` and follow the gusts more steeply, and
    ``gust`` deepens the swells from a steady blow to buffeting."""
    s, g = spec.param("strength", 0.5), spec.param("gust", 0.5)
    e = 0.5 + 0.5 * np.tanh(lfo(rng, n, 0.35) * 1.2)  # 0..1, slow gusts
    depth = 0.15 + 0.8 * g
    out = shaped_noise(rng, n, lowpass(90, 2), shared=0.6) * (1.0 - 0.5 * depth + 0.5 * depth * e)[:, None]
    for k, (fc, w) in enumerate(((220, 0.9), (450, 0.7), (900, 0.3 + 0.5 * s), (1700, 0.08 + 0.6 * s ** 1.5))):
        env = (1.0 - depth) + depth * e ** (1 + k)
        out += w * shaped_noise(rng, n, band(fc * (1 + 0.2 * s), 0.45), shared=0.2) * env[:, None]
    return out


def city(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Distant city: a traffic rumble with slow swells of passing cars and a faint high hiss of tyres."""
    swell = 0.6 + 0.4 * np.tanh(lfo(rng, n, 0.25))
    out = shaped_noise(rng, n, lambda f: lowpass(250, 1.5)(f) * highpass(35)(f), shared=0.5) * swell[:, None]
    return out + 0.25 * shaped_noise(rng, n, band(2500, 0.8), shared=0.1) * swell[:, None]


def hum(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Lift car / small room: a 50 Hz mains hum with buzzing harmonics (the light), the hiss of a
    ventilation fan, and with ``motor`` > 0 the whine and rumble of the lift motor, wavering slowly;
    ``close`` (0..1, how shut in) brings the hum forward and muffles the air."""
    motor, close = spec.param("motor", 0.0), spec.param("close", 0.5)
    t = np.arange(n) / SAMPLE_RATE
    # 50 Hz and harmonics: with an integer number of cycles in the loop (n is a multiple of 882) it is periodic.
    tone = sum((0.6 / k) * np.sin(2 * np.pi * 50 * k * t + k) for k in (1, 2, 3, 4, 6, 8))
    buzz = 0.15 * np.sign(np.sin(2 * np.pi * 100 * t)) * (0.5 + 0.5 * close)
    out = np.repeat(((tone + buzz) * (0.5 + 0.5 * close))[:, None], 2, axis=1) * 0.35
    out += (0.6 - 0.3 * close) * shaped_noise(rng, n, lambda f: band(600, 1.2)(f) * lowpass(2500 - 1500 * close)(f))
    if motor > 0:
        wob = 1 + 0.01 * lfo(rng, n, 0.4)
        ph = _osc_loop(140 * wob)
        whine = np.sin(ph) + 0.4 * np.sin(2 * ph) + 0.15 * np.sin(3 * ph)
        out += motor * 0.5 * whine[:, None]
        out += motor * 0.8 * shaped_noise(rng, n, lowpass(70, 2), shared=0.8)
    return out


def creaks(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """A stalled lift: slow metallic creaks and groans (gliding resonances) over a near-silent shaft."""
    rate = 0.15 + 0.6 * spec.param("tension", 0.5)
    out = 0.05 * shaped_noise(rng, n, lowpass(120, 2))
    for start in _poisson_times(rng, n, rate) if rate > 0 else ():
        m = int(rng.uniform(0.3, 0.9) * SAMPLE_RATE)
        f0 = rng.uniform(180, 420)
        f = f0 * (1 + 0.15 * np.sin(np.linspace(0, rng.uniform(1, 3) * np.pi, m)))
        rough = 1 + 0.6 * np.sign(np.sin(_osc(np.full(m, rng.uniform(18, 40)))))  # stick-slip
        ev = (np.sin(_osc(f)) + 0.5 * np.sin(_osc(2.01 * f))) * rough * _window(m)
        add_event(out, 0.6 * ev, int(start), pan=float(rng.uniform(-0.8, 0.8)))
    return out


def _voice_streams(rng: np.random.Generator, n: int, voices: int, talk: float) -> tuple[np.ndarray, ...]:
    """The voiced parts of ``voices`` talkers (saw-like buzz at each talker's pitch, syllable rhythm, phrases
    that start and stop), summed into four groups: two vowel colours x two sides (filters are linear, so
    filtering each group once equals filtering every voice)."""
    groups = np.zeros((4, n))
    unvoiced = np.zeros((2, n))
    for v in range(voices):
        f0 = rng.uniform(95, 230) * (1 + 0.04 * lfo(rng, n, 2.0))
        saw = (_osc_loop(f0) / (2 * np.pi) % 1.0) * 2 - 1
        syll = np.maximum(0.0, lfo(rng, n, rng.uniform(3.5, 5.5))) ** 1.3
        phrase = 0.5 + 0.5 * np.tanh(3 * (lfo(rng, n, 0.3) + 1.2 * talk - 0.9))
        env = syll * phrase
        vowel = 0.5 + 0.5 * np.tanh(2 * lfo(rng, n, 3.0))
        side = v % 2
        groups[side] += saw * env * vowel
        groups[2 + side] += saw * env * (1 - vowel)
        unvoiced[side] += np.maximum(0.0, lfo(rng, n, 6.0) - 1.0) * phrase
    return groups[0], groups[1], groups[2], groups[3], unvoiced[0], unvoiced[1]


def murmur(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """An audience waiting or half-listening: ``density`` (0..1, how full the hall is) sets how many talkers
    (1 to 24 separate voices with their own pitch, syllables and phrases, then a diffuse babble bed),
    ``talk`` (0..1, attentive .. bored) how much of the time each one talks; a few coughs and shuffles."""
    d, talk = spec.param("density", 0.5), spec.param("talk", 0.5)
    voices = 1 + int(round(23 * d))
    a_l, a_r, e_l, e_r, u_l, u_r = _voice_streams(rng, n, voices, talk)

    def vowel(f1: float, f2: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda f: (band(f1, 0.35)(f) + 0.7 * band(f2, 0.3)(f) + 0.2 * band(2700, 0.3)(f)) * highpass(90)(f)

    out = np.stack([filter_circular(a_l, vowel(700, 1200)) + filter_circular(e_l, vowel(400, 2000)),
                    filter_circular(a_r, vowel(700, 1200)) + filter_circular(e_r, vowel(400, 2000))], 1)
    hiss = shaped_noise(rng, n, band(4500, 0.6), shared=0.0)
    out += 0.15 * hiss * np.stack([u_l, u_r], 1)
    out /= max(float(np.sqrt(np.mean(out ** 2))), 1e-9)
    # A full hall blurs into a steady babble: speech-shaped noise whose share grows with the density.
    bed = shaped_noise(rng, n, lambda f: band(500, 1.0)(f) + 0.3 * band(2000, 0.8)(f), shared=0.1)
    bed *= (0.8 + 0.2 * np.tanh(lfo(rng, n, 1.0)))[:, None]
    out = out + (1.5 * d ** 2) * bed
    for start in _poisson_times(rng, n, 0.05 + 0.4 * talk * d):  # coughs and chair shuffles
        m = int(rng.uniform(0.15, 0.35) * SAMPLE_RATE)
        ev = rng.standard_normal(m) * _decay(m, 0.01, 0.08)
        ev = filter_circular(ev, band(rng.uniform(400, 1200), 0.8))
        add_event(out, 0.5 * ev / max(np.abs(ev).max(), 1e-9), int(start), pan=float(rng.uniform(-1, 1)))
    return out


def _bark(rng: np.random.Generator, size: float) -> np.ndarray:
    m = int(rng.uniform(0.14, 0.24) * SAMPLE_RATE)
    t = np.arange(m) / SAMPLE_RATE
    f0 = rng.uniform(420, 600) * (1.3 - 0.6 * size) * np.exp(-t * 3.0)
    saw = ((np.cumsum(f0) / SAMPLE_RATE) % 1.0) * 2 - 1
    ev = saw + 0.5 * rng.standard_normal(m) * np.exp(-t / 0.03)
    ev = filter_circular(ev, lambda f: band(900 * (1.2 - 0.4 * size), 0.9)(f) + 0.4 * band(2400, 0.5)(f))
    return ev * _decay(m, 0.004, 0.07)


def dogs(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Dogs: barks (a saw-like cry that drops in pitch, with a noisy onset, through a mouth resonance) in
    runs of one to four, more often as ``activity`` rises, over rhythmic panting (breathy noise bursts,
    in and out) that quickens with it; ``size`` deepens the bark."""
    act, size = spec.param("activity", 0.5), spec.param("size", 0.5)
    out = np.zeros((n, 2))
    pant_hz = 1.6 + 2.4 * act
    t = np.arange(n) / SAMPLE_RATE
    cycles = max(1, round(pant_hz * n / SAMPLE_RATE))  # whole pant cycles in the loop: periodic
    ph = (t * cycles * SAMPLE_RATE / n) % 1.0
    breath = np.where(ph < 0.45, np.sin(np.pi * ph / 0.45), 0.7 * np.sin(np.pi * np.clip((ph - 0.5) / 0.45, 0, 1)))
    pant = shaped_noise(rng, n, lambda f: band(1400, 0.7)(f) + 0.5 * band(3200, 0.4)(f), shared=0.7)
    out += (0.1 + 0.2 * act) * pant * (np.maximum(breath, 0) ** 2)[:, None]
    for start in _poisson_times(rng, n, 0.05 + 0.55 * act ** 1.5):
        pan = float(rng.uniform(-0.6, 0.6))
        at = int(start)
        for _ in range(int(rng.integers(1, 2 + int(3 * act)))):
            b = _bark(rng, size)
            add_event(out, 2.0 * b / max(np.abs(b).max(), 1e-9), at, pan)
            at += b.size + int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)
    return out


def rustle(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Spider on a dry floor: runs of tiny scratchy leg taps (1-3 ms high-passed noise clicks at 10-20 per
    second) over a faint dry scrape while it moves, more and longer runs with ``activity``; still between runs."""
    act = spec.param("activity", 0.5)
    moving = np.full(n, 0.05)
    taps = np.zeros((n, 2))
    for start in _poisson_times(rng, n, 0.3 + 2.5 * act):
        run = int(rng.uniform(0.2, 0.4 + 1.2 * act) * SAMPLE_RATE)
        idx = (int(start) + np.arange(run)) % n
        moving[idx] += _window(run)
        step = SAMPLE_RATE / rng.uniform(10, 20)
        pan = float(rng.uniform(-0.9, 0.9))
        for k in range(int(run / step)):
            m = int(rng.uniform(0.001, 0.003) * SAMPLE_RATE)
            click = rng.standard_normal(m) * np.exp(-np.arange(m) / (m / 3))
            click = np.diff(click, prepend=0.0)  # high-pass: a dry tick
            add_event(taps, rng.uniform(0.05, 0.15) * click, int(start + k * step + rng.uniform(0, step / 3)), pan)
    scrape = shaped_noise(rng, n, band(4500, 0.6), shared=0.3) * np.minimum(moving, 1.0)[:, None]
    return taps + 0.012 * scrape


def room(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Room tone: the quiet broadband air of an indoor space (a little low hum of the building)."""
    return shaped_noise(rng, n, lambda f: lowpass(400, 1.2)(f) * highpass(40)(f) + 0.05 * band(3000, 1)(f),
                        shared=0.3)


def surf(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Surf: each wave builds as a low swell, breaks (a broadband crash) and washes up the sand as a
    fading hiss; ``waves`` (0 still water .. 1 rough) sets how tall they break; between waves the sea
    keeps a low murmur."""
    w = spec.param("waves", 0.5)
    t = np.arange(n) / SAMPLE_RATE
    length = n / SAMPLE_RATE
    count = max(1, round(length / 7.0))  # whole waves in the loop (~7 s each)
    period = length / count
    env_crash = np.zeros(n)
    env_wash = np.zeros(n)
    for k in range(count):
        height = rng.uniform(0.6, 1.0)
        t0 = k * period + rng.uniform(0, 0.15 * period)
        for shift in (-length, 0.0, length):  # wrap round the loop
            u = t - t0 - shift
            env_crash += height * np.where(u < 0, np.exp(u / 1.5), np.exp(-u / 0.8))
            env_wash += height * np.where(u < 0.3, 0.0, (1 - np.exp(-(u - 0.3) / 0.3)) * np.exp(-(u - 0.3) / 2.0))
    crash = shaped_noise(rng, n, lambda f: lowpass(900 + 1500 * w)(f) * highpass(60)(f), shared=0.5)
    wash = shaped_noise(rng, n, band(3500, 1.0), shared=0.1)
    bed = shaped_noise(rng, n, lowpass(200, 1.5), shared=0.5)
    return (crash * ((0.3 + 0.9 * w) * env_crash)[:, None] + wash * ((0.15 + 0.5 * w) * env_wash)[:, None]
            + bed * 0.35)


def leaves(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Leaves in a breeze: a high, fine rustle that swells and settles with slow gusts (``breeze`` 0..1)."""
    b = spec.param("breeze", 0.4)
    gust = 0.5 + 0.5 * np.tanh(1.5 * lfo(rng, n, 0.3) + (b - 0.5))
    flutter = 1 + 0.3 * lfo(rng, n, 12.0)
    x = shaped_noise(rng, n, lambda f: band(4000, 0.9)(f) + 0.3 * band(1200, 0.6)(f), shared=0.1)
    return x * (gust * flutter)[:, None]


def _chirp_song(rng: np.random.Generator, species: int) -> np.ndarray:
    sr = SAMPLE_RATE
    if species == 0:  # rising sweeps, repeated
        notes = []
        for _ in range(int(rng.integers(3, 6))):
            m = int(0.07 * sr)
            f = np.linspace(rng.uniform(2400, 2900), rng.uniform(4200, 4800), m)
            notes += [np.sin(_osc(f)) * _window(m), np.zeros(int(0.05 * sr))]
        return np.concatenate(notes)
    if species == 1:  # a two-note whistle, falling
        a, b = rng.uniform(2000, 2400), rng.uniform(1600, 1900)
        m = int(0.22 * sr)
        return np.concatenate([np.sin(_osc(np.full(m, a))) * _window(m), np.zeros(int(0.06 * sr)),
                               np.sin(_osc(np.full(m, b))) * _window(m)])
    m = int(rng.uniform(0.4, 0.8) * sr)  # a trill
    tt = np.arange(m) / sr
    f = rng.uniform(4500, 5500) * (1 + 0.05 * np.sin(2 * np.pi * 3 * tt))
    return np.sin(_osc(f)) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(20, 30) * tt)) * _window(m)


def birds(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Birdsong: three kinds of song (rising chirps, a falling two-note whistle, a trill) from different
    places around the listener, ``birds`` (0..1) songs in the loop from a couple to a dawn chorus."""
    count = spec.param("birds", 0.5)
    out = 0.02 * shaped_noise(rng, n, band(3000, 1.0), shared=0.0)
    songs = max(1, int(round(1 + 10 * count * n / SAMPLE_RATE / 6.0)))
    for _ in range(songs):
        song = _chirp_song(rng, int(rng.integers(0, 3)))
        add_event(out, rng.uniform(0.3, 1.0) * song, int(rng.integers(0, n)), pan=float(rng.uniform(-1, 1)))
    return out


def lake(spec: SoundSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Still water lapping at a jetty: soft low splashes every second or two over a quiet bed of air."""
    t = np.arange(n) / SAMPLE_RATE
    cycles = max(1, round(n / SAMPLE_RATE / 1.6))
    lap = (0.5 - 0.5 * np.cos(2 * np.pi * cycles * t * SAMPLE_RATE / n)) ** 3 * (1 + 0.4 * lfo(rng, n, 0.2))
    water = shaped_noise(rng, n, lambda f: band(500, 0.9)(f) * lowpass(1200)(f), shared=0.5)
    air = shaped_noise(rng, n, lambda f: lowpass(300)(f) * highpass(40)(f), shared=0.3)
    return water * lap[:, None] + 0.25 * air


def pacer_tone(phase: np.ndarray, osc_phase: np.ndarray) -> np.ndarray:
    """The breathing pacer's soft tone for a run of breath phases (0..1) and oscillator phases (radians).

    It follows the pacer sphere's curve (40 % in-breath, 60 % out-breath): the
    tone swells and glides up a major third while breathing in, and falls and
    fades while breathing out, never quite silent (a sine with a touch of its
    octave and twelfth: round, not a beep).
    """
    full = breath_curve(phase)
    tone = np.sin(osc_phase) + 0.2 * np.sin(2 * osc_phase) + 0.05 * np.sin(3 * osc_phase)
    return tone * (0.15 + 0.85 * full)


def breath_curve(phase: np.ndarray) -> np.ndarray:
    """How full the lungs are (0..1) at a breath phase: the renderer's pacer curve (shaders.breath_curve)."""
    ph = np.mod(phase, 1.0)
    return np.where(ph < 0.4, 0.5 - 0.5 * np.cos(np.pi * ph / 0.4), 0.5 + 0.5 * np.cos(np.pi * (ph - 0.4) / 0.6))


PACER_BASE_HZ = 196.0  # G3: low and soft
PACER_GLIDE = 2 ** (4 / 12)  # up a major third at full lungs


GENERATORS: dict[str, Callable[[SoundSpec, np.random.Generator, int], np.ndarray]] = {
    "wind": wind, "city": city, "hum": hum, "creaks": creaks, "murmur": murmur, "dogs": dogs,
    "rustle": rustle, "room": room, "surf": surf, "leaves": leaves, "birds": birds, "lake": lake,
}


def _seed(spec: SoundSpec) -> int:
    return zlib.crc32(repr((spec.kind, spec.params, spec.seconds, spec.seed)).encode())


@functools.lru_cache(maxsize=16)  # about 2 MB per 6-s buffer
def synthesize(spec: SoundSpec) -> np.ndarray:
    """The looping buffer for ``spec``: float32, shape (frames, 2), RMS :data:`REF_RMS` (peaks <= :data:`MAX_PEAK`);
    the same spec gives the same samples.

    Read-only (shared by the cache). Raises ``KeyError`` for an unknown kind.
    """
    gen = GENERATORS[spec.kind]
    # A whole number of 50 Hz cycles (882 frames) keeps the hum periodic; 0.02 s steps are inaudible elsewhere.
    n = max(882, int(round(spec.frames / 882)) * 882)
    x = gen(spec, np.random.default_rng(_seed(spec)), n)
    x = x - x.mean(axis=0)
    rms = float(np.sqrt(np.mean(x ** 2)))
    x = (x * (REF_RMS / rms)) if rms > 0 else x
    peak = float(np.abs(x).max())
    if peak > MAX_PEAK:  # a sparse, impulsive sound (one talker, lone taps): its peaks decide, not its RMS
        x *= MAX_PEAK / peak
    out = np.ascontiguousarray(x, dtype=np.float32)
    out.setflags(write=False)
    return out
