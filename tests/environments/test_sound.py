"""Procedural sound: buffers rendered offline and measured against the dials, seams, ramps, the engine without a device."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from tests.conftest import require

from environments import registry
from environments.scene_state import SceneState, SceneStateBox
from environments.sound import engine as engine_mod
from environments.sound import output as output_mod
from environments.sound.mixer import Mixer, render_offline, soft_limit
from environments.sound.soundscape import (
    CALIBRATION_DB,
    Layer,
    db_to_gain,
    mapped_environments,
    soundscape_for,
    volume_to_gain,
)
from environments.sound.synth import (
    GENERATORS,
    MAX_PEAK,
    REF_RMS,
    SAMPLE_RATE,
    SoundSpec,
    breath_curve,
    synthesize,
)

SR = SAMPLE_RATE


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def dbfs(x: np.ndarray) -> float:
    return 20 * np.log10(max(rms(x), 1e-12))


def envelope(x: np.ndarray, win_s: float = 0.05) -> np.ndarray:
    """Short-term RMS (both channels) in windows of ``win_s``."""
    w = int(win_s * SR)
    m = x.shape[0] // w
    return np.sqrt(np.mean(np.asarray(x[: m * w], dtype=np.float64).reshape(m, -1) ** 2, axis=1))


def wait_until(cond, timeout_s: float = 10.0) -> bool:
    """Poll ``cond`` until true or the deadline (the engine runs on its own thread)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


def layer(layers: list[Layer], name: str) -> Layer:
    (found,) = [x for x in layers if x.name == name]
    return found


def heights_values(**over: float) -> dict[str, float]:
    values = registry.dial_values("heights", 6)
    values.update(over)
    return values


# ---------------------------------------------------------------------------------------------- buffers
MID = tuple((p, 0.5) for p in ("strength", "gust", "density", "talk", "activity", "size", "motor", "close",
                                "tension", "waves", "breeze", "birds"))


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_every_buffer_loops_without_a_click_and_is_normalised(kind: str) -> None:
    buf = synthesize(SoundSpec(kind, MID))
    assert buf.dtype == np.float32 and buf.ndim == 2 and buf.shape[1] == 2
    assert buf.shape[0] >= 4 * SR  # 4-8 s loops
    assert np.all(np.isfinite(buf))
    # normalised: RMS at the reference, unless the peaks would pass MAX_PEAK (then the peaks are at it)
    assert rms(buf) == pytest.approx(REF_RMS, rel=1e-3) or np.abs(buf).max() == pytest.approx(MAX_PEAK, rel=1e-3)
    assert np.abs(buf).max() <= MAX_PEAK * 1.001
    # the seam (last frame -> first frame) is no bigger a step than the buffer's own steps: no click
    inner = np.abs(np.diff(buf.astype(np.float64), axis=0))
    seam = np.abs(buf[0].astype(np.float64) - buf[-1])
    assert np.all(seam <= np.quantile(inner, 0.9999, axis=0)), (seam, np.quantile(inner, 0.9999, axis=0))


def test_the_seam_check_catches_a_badly_cut_loop() -> None:
    """The seam bound above is tight enough to fail a loop cut mid-cycle (the hum's 50 Hz, cut off-cycle)."""
    buf = synthesize(SoundSpec("hum", MID))
    cut = buf[: buf.shape[0] // 2 + 221].astype(np.float64)  # a quarter of a 50 Hz cycle off
    inner = np.abs(np.diff(cut, axis=0))
    assert np.any(np.abs(cut[0] - cut[-1]) > np.quantile(inner, 0.9999, axis=0))


def test_buffers_are_seeded_and_reproducible() -> None:
    spec = SoundSpec("wind", (("strength", 0.5), ("gust", 0.5)))
    a = synthesize(spec)
    synthesize.cache_clear()
    assert np.array_equal(a, synthesize(spec))
    assert not np.array_equal(a, synthesize(SoundSpec("wind", spec.params, seed=1)))
    assert not a.flags.writeable  # shared by the cache: nobody may change it


# ---------------------------------------------------------------------------------------------- level against the dials
def test_wind_gets_louder_and_gustier_with_height() -> None:
    levels = []
    for h in (0.0, 20.0, 60.0, 100.0, 160.0):
        w = layer(soundscape_for("heights", heights_values(height_m=h), 6), "wind")
        levels.append(dbfs(render_offline([w], 4.0)))
    assert all(b > a + 1.0 for a, b in zip(levels, levels[1:])), levels
    assert levels[-1] - levels[0] > 12.0
    # along the described hierarchy too: never quieter one level up
    per_level = [dbfs(render_offline([layer(soundscape_for("heights", registry.dial_values("heights", i), i),
                                            "wind")], 2.0))
                 for i in range(registry.info("heights").max_level + 1)]
    assert all(b >= a - 0.01 for a, b in zip(per_level, per_level[1:])), per_level
    # gustier: the loudness swings more with the wind dial
    calm = synthesize(SoundSpec("wind", (("strength", 0.5), ("gust", 0.0))))
    gusty = synthesize(SoundSpec("wind", (("strength", 0.5), ("gust", 1.0))))
    cv = [np.std(envelope(b, 0.25)) / np.mean(envelope(b, 0.25)) for b in (calm, gusty)]
    assert cv[1] > 1.5 * cv[0], cv


def test_city_fades_as_the_plaza_drops_away() -> None:
    low = layer(soundscape_for("heights", heights_values(height_m=0.0), 0), "city").gain
    high = layer(soundscape_for("heights", heights_values(height_m=160.0), 12), "city").gain
    assert high < low / 4


def test_murmur_louder_and_denser_with_a_fuller_hall() -> None:
    rendered = []
    for audience in (0.0, 0.5, 1.0):
        lay = layer(soundscape_for("public_speaking", {"audience": audience * 200.0, "attention": 0.5}, 5), "murmur")
        rendered.append(render_offline([lay], 6.0))
    levels = [dbfs(x) for x in rendered]
    assert levels[0] < levels[1] < levels[2], levels
    # denser: a few voices come and go (a jumpy envelope), a full hall is a steady babble
    cv = [np.std(envelope(x)) / np.mean(envelope(x)) for x in rendered]
    assert cv[0] > cv[1] > cv[2], cv


def test_murmur_talks_more_when_the_audience_stops_listening() -> None:
    attentive = layer(soundscape_for("public_speaking", {"audience": 100.0, "attention": 1.0}, 5), "murmur")
    bored = layer(soundscape_for("public_speaking", {"audience": 100.0, "attention": 0.0}, 5), "murmur")
    assert bored.gain > attentive.gain


def test_dogs_bark_more_often_and_louder_with_activity() -> None:
    def barks(x: np.ndarray) -> int:
        env = envelope(x, 0.02)
        loud = env > 4 * np.median(env)
        return int(np.count_nonzero(loud[1:] & ~loud[:-1]))

    calm = soundscape_for("dogs", {"activity": 0.25}, 3)
    wild = soundscape_for("dogs", {"activity": 1.0}, 10)
    assert layer(wild, "dogs").gain > layer(calm, "dogs").gain
    a, b = (synthesize(layer(x, "dogs").spec) for x in (calm, wild))
    assert barks(b) > barks(a), (barks(a), barks(b))


def test_spider_rustle_follows_number_distance_box_and_picture() -> None:
    def gain(**dials: float) -> float:
        values = registry.dial_values("spiders", 6)
        values.update(dials)
        found = [x for x in soundscape_for("spiders", values, 6) if x.name == "rustle"]
        return found[0].gain if found else 0.0

    assert gain(distance_m=0.5) > gain(distance_m=2.0) > gain(distance_m=5.0)
    assert gain(count=8.0) > gain(count=1.0)
    assert gain(contained=1.0, picture=0.0) < gain(contained=0.0, picture=0.0) / 4
    assert gain(picture=1.0) == 0.0


def test_enclosed_space_hums_closer_and_the_stalled_lift_creaks() -> None:
    first = soundscape_for("enclosed", {}, 0)
    last = soundscape_for("enclosed", {}, 11)
    assert layer(last, "hum").gain > layer(first, "hum").gain
    assert "creaks" in {x.name for x in last} and "creaks" not in {x.name for x in first}
    moving = layer(soundscape_for("enclosed", {"moving": 1.0, "stalled": 0.0}, 5), "hum").spec
    assert moving.param("motor") == 1.0


def test_the_relaxation_scenes_settle_with_the_calm_response() -> None:
    rough = layer(soundscape_for("beach", {"calm": 0.0}, 0), "surf")
    calm = layer(soundscape_for("beach", {"calm": 1.0}, 0), "surf")
    assert calm.gain < rough.gain and calm.spec.param("waves") < rough.spec.param("waves")
    assert layer(soundscape_for("forest", {"calm": 1.0}, 0), "leaves").gain < \
        layer(soundscape_for("forest", {"calm": 0.0}, 0), "leaves").gain


@pytest.mark.parametrize("name", mapped_environments())
def test_every_mapped_environment_is_audible_at_every_level(name: str) -> None:
    try:
        top = registry.info(name).max_level
    except Exception:
        top = 11  # mapped before it exists
    for lv in sorted({0, top // 2, top}):
        try:
            values = registry.dial_values(name, lv)
        except Exception:
            values = {}
        layers = soundscape_for(name, values, lv)
        assert layers, (name, lv)
        x = render_offline(layers, 2.0)
        assert -65.0 < dbfs(x) < -6.0, (name, lv, dbfs(x))
        assert np.abs(x).max() < 1.0


def test_unknown_environments_are_silent() -> None:
    assert soundscape_for("no_such_place", {"height_m": 10.0}, 3) == []
    assert not render_offline([], 0.5).any()


def test_volume_semantics() -> None:
    assert volume_to_gain(1.0) == 1.0 and volume_to_gain(0.0) == 0.0
    assert volume_to_gain(0.5) == pytest.approx(0.1)  # -20 dB
    assert volume_to_gain(2.0) == 1.0 and volume_to_gain(-1.0) == 0.0
    vs = np.linspace(0, 1, 21)
    assert np.all(np.diff([volume_to_gain(v) for v in vs]) > 0)
    loud = soundscape_for("safe_place", {"volume": 1.0}, 0)
    soft = soundscape_for("safe_place", {"volume": 0.5}, 0)
    assert [s.gain for s in soft] == pytest.approx([g.gain * 0.1 for g in loud])
    assert loud[0].gain == pytest.approx(db_to_gain(-30.0 + CALIBRATION_DB))


def test_pacer_tone_only_where_it_belongs() -> None:
    assert "pacer" in {x.name for x in soundscape_for("safe_place", {}, 0, pacer=True)}
    assert "pacer" in {x.name for x in soundscape_for("beach", {}, 0, pacer=True)}
    assert "pacer" not in {x.name for x in soundscape_for("safe_place", {}, 0)}
    assert "pacer" not in {x.name for x in soundscape_for("heights", heights_values(), 6, pacer=True)}


# ---------------------------------------------------------------------------------------------- mixing without pops
def _dc(spec: SoundSpec) -> np.ndarray:
    """A test buffer of constant 1.0: the mix is then exactly the gain curve."""
    return np.ones((SR, 2), dtype=np.float32)


def test_gains_ramp_in_a_straight_line_over_the_ramp_time() -> None:
    m = Mixer(ramp_s=0.5, buffers=_dc)
    m.set_layers([Layer("a", SoundSpec("x"), 1.0)])
    g = m.render(SR, limit=False)[:, 0].astype(np.float64)
    ramp = int(0.5 * SR)
    assert g[ramp - 1] == pytest.approx(1.0) and g[ramp // 2] == pytest.approx(0.5, abs=1e-3)
    assert np.abs(np.diff(g)).max() <= 1.0 / (0.3 * SR)  # never faster than full scale in 0.3 s
    assert m.settled
    # down, in blocks as an audio callback asks for them
    m.set_layers([Layer("a", SoundSpec("x"), 0.25)])
    blocks = np.concatenate([m.render(512, limit=False)[:, 0] for _ in range(60)]).astype(np.float64)
    assert np.abs(np.diff(np.concatenate([[g[-1]], blocks]))).max() <= 0.75 / (0.5 * SR) * 1.001
    assert blocks[-1] == pytest.approx(0.25)


def test_a_changed_buffer_crossfades_and_a_removed_layer_fades_out() -> None:
    m = Mixer(ramp_s=0.4, buffers=_dc)
    m.set_layers([Layer("wind", SoundSpec("x", (("strength", 0.25),)), 0.5)])
    m.render(SR)
    m.set_layers([Layer("wind", SoundSpec("x", (("strength", 0.5),)), 0.5)])
    assert m.target_gains() == {"wind": pytest.approx(0.5)}
    y = m.render(SR, limit=False)[:, 0].astype(np.float64)
    assert np.allclose(y, 0.5, atol=1e-6)  # out + in = constant: no dip, no bump
    assert len(m._voices) == 1  # the old buffer is gone once silent
    m.set_layers([])
    y = m.render(SR, limit=False)[:, 0].astype(np.float64)
    assert y[0] > 0.49 and y[-1] == 0.0 and np.abs(np.diff(y)).max() <= 0.5 / (0.4 * SR) * 1.001
    assert m._voices == []


def test_a_level_change_on_real_buffers_does_not_pop() -> None:
    m = Mixer(ramp_s=0.5)
    m.set_layers(soundscape_for("heights", registry.dial_values("heights", 2), 2))
    before = np.concatenate([m.render(1024) for _ in range(40)]).astype(np.float64)
    m.set_layers(soundscape_for("heights", registry.dial_values("heights", 12), 12))
    after = np.concatenate([m.render(1024) for _ in range(40)]).astype(np.float64)
    joined = np.concatenate([before, after])
    step_at_change = np.abs(np.diff(joined[before.shape[0] - 2: before.shape[0] + 2048], axis=0)).max()
    steady = np.abs(np.diff(after[-SR // 2:], axis=0)).max()
    assert step_at_change <= steady  # the switch is no sharper than the new sound itself
    assert dbfs(after[-SR // 2:]) > dbfs(before) + 6


def test_soft_limit_is_linear_below_the_knee_and_bounded() -> None:
    x = np.linspace(-0.5, 0.5, 101)
    assert np.array_equal(soft_limit(x), x)
    y = soft_limit(np.linspace(-5, 5, 1001))
    assert np.abs(y).max() < 1.0 and np.all(np.diff(y) > 0)


def test_pacer_tone_swells_on_the_in_breath_and_follows_the_scene_phase() -> None:
    m = Mixer(ramp_s=0.3)
    m.set_breath(0.0, rate_hz=0.1)  # 6 breaths a minute
    m.set_layers([Layer("pacer", SoundSpec("pacer"), 0.2)])
    x = np.concatenate([m.render(1024) for _ in range(int(10 * SR / 1024))]).astype(np.float64)
    env = envelope(x, 0.25)  # 40 windows over one 10-s breath
    t = (np.arange(env.size) + 0.5) * 0.25
    full = breath_curve(t * 0.1)
    assert np.corrcoef(env[4:], full[4:])[0, 1] > 0.95  # loudness follows the lungs (after the fade-in)
    assert np.argmax(env) in range(14, 19)  # loudest at the top of the in-breath (40 % of the cycle, 4 s)
    assert np.abs(np.diff(x, axis=0)).max() < 0.05  # a soft tone: no steps
    # the scene jumps the phase by half a cycle: the tone catches up within a couple of seconds, smoothly
    m.set_breath(0.5 + m._breath_phase, rate_hz=0.1)
    y = np.concatenate([m.render(1024) for _ in range(int(4 * SR / 1024))]).astype(np.float64)
    assert abs((m._breath_target() - m._breath_phase + 0.5) % 1.0 - 0.5) < 0.02
    assert np.abs(np.diff(np.concatenate([x[-1:], y]), axis=0)).max() < 0.05


# ---------------------------------------------------------------------------------------------- the engine
def test_engine_runs_without_an_audio_device() -> None:
    box = SceneStateBox(SceneState("heights", 3))
    eng = engine_mod.SoundEngine(box, rate_hz=10.0)
    eng.start()  # no PortAudio / no device here (or a real one): never raises
    try:
        assert eng.running
        assert wait_until(lambda: eng.target_gains().get("wind", 0.0) > 0)
    finally:
        eng.stop()
        eng.stop()  # twice is fine
    assert not eng.running


def test_no_portaudio_and_no_device_both_give_the_silent_output(monkeypatch, caplog) -> None:
    class PortAudioError(Exception):
        pass

    def no_device(*a, **k):
        raise PortAudioError("Error querying device -1")

    fake = types.SimpleNamespace(query_devices=no_device)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with caplog.at_level("INFO", logger="environments.sound.output"):
        out = output_mod.open_output()
    assert isinstance(out, output_mod.NullOutput) and not out.active
    assert "no audio device" in out.description and "querying device" in caplog.text
    out.start(lambda n: np.zeros((n, 2), np.float32))
    out.stop()
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # the import itself fails
    assert isinstance(output_mod.open_output(), output_mod.NullOutput)
    with pytest.raises(ImportError):
        output_mod.open_output("device")  # asked for a device explicitly: the error is the caller's
    assert isinstance(output_mod.open_output("none"), output_mod.NullOutput)


def test_the_device_callback_plays_the_mix_and_never_raises() -> None:
    """The real output class on a stand-in for sounddevice: PortAudio's callback gets the mixer's blocks."""
    streams = []

    class Stream:
        def __init__(self, **kw):
            self.kw, self.started, self.closed = kw, False, False
            streams.append(self)

        def start(self):
            self.started = True

        def stop(self):
            pass

        def close(self):
            self.closed = True

    fake = types.SimpleNamespace(query_devices=lambda device, kind: {"name": "test speakers"}, OutputStream=Stream)
    out = output_mod.SoundDeviceOutput(sd=fake)
    box = SceneStateBox(SceneState("safe_place", 0, safe_place=True))
    eng = engine_mod.SoundEngine(box, output=out)
    eng.start()
    try:
        (stream,) = streams
        assert stream.started and stream.kw["samplerate"] == SR and stream.kw["channels"] == 2
        assert wait_until(lambda: bool(eng.layers))
        block = np.zeros((4096, 2), np.float32)
        for _ in range(20):  # past the fade-in
            stream.kw["callback"](block, 4096, None, None)
        assert rms(block) > 1e-3
    finally:
        eng.stop()
    assert stream.closed
    failing = output_mod.SoundDeviceOutput(sd=fake)

    def broken(n):
        raise RuntimeError("mix failed")

    failing.start(broken)
    block = np.ones((256, 2), np.float32)
    streams[-1].kw["callback"](block, 256, None, None)  # logged once, silence, no raise
    assert not block.any()


_REAL_PORTAUDIO = r"""
import json, sys, threading
import numpy as np
from environments.scene_state import SceneState, SceneStateBox
from environments.sound import SoundEngine
box = SceneStateBox(SceneState("heights", 12))
eng = SoundEngine(box)
seen = {"blocks": 0, "loudest": 0.0}
heard = threading.Event()
render = eng.mixer.render
def spy(n):  # ALSA's null device takes blocks as fast as they come: keep counts, not blocks
    out = render(n)
    seen["blocks"] += 1
    seen["loudest"] = max(seen["loudest"], float(np.sqrt(np.mean(out.astype(np.float64) ** 2))))
    if seen["loudest"] >= 1e-3:
        heard.set()
    return out
eng.mixer.render = spy
eng.start()
heard.wait(10)  # until the stream has played the mix (the timeout only guards against a hang)
eng.stop()
print(json.dumps({"active": eng.output.active, "what": eng.output.description, **seen}))
"""


def test_a_real_portaudio_stream_plays_the_mix(tmp_path) -> None:
    """PortAudio itself (where libportaudio2 is installed) on ALSA's null device: the stream pulls the mix."""
    import json
    import os
    import subprocess

    try:
        import sounddevice  # noqa: F401
    except OSError:
        require(False, "no PortAudio library on this machine (apt-get install libportaudio2; ./dev test does)")
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf)}
    done = subprocess.run([sys.executable, "-c", _REAL_PORTAUDIO], env=env, capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    require(got["active"], f"PortAudio found no ALSA output here: {got['what']}")
    assert got["blocks"] > 0 and got["loudest"] > 1e-3, got


def test_a_scene_change_reaches_the_target_gains() -> None:
    box = SceneStateBox(SceneState("heights", 1))
    eng = engine_mod.SoundEngine(box, output="none")
    eng.update()
    low = eng.target_gains()
    box.put(SceneState("heights", 12))
    eng.update()
    high = eng.target_gains()
    assert high["wind"] > 4 * low["wind"] and high["city"] < low["city"]
    # a therapist's dial override counts (here: no wind at all at the top)
    box.put(SceneState("heights", 12, dials=(("wind", 0.0),)))
    eng.update()
    assert eng.target_gains()["wind"] < high["wind"]
    # the safe place sounds when the scene goes there, with the pacer's tone while the pacer shows
    box.put(SceneState("heights", 12, safe_place=True, breath_phase=0.2))
    eng.update()
    gains = eng.target_gains()
    assert gains["wind"] == 0.0 and gains["lake"] > 0 and gains["pacer"] > 0
    assert eng.environment == "safe_place"
    # master and environment volume, and the scene's fade
    before = gains["lake"]
    eng.set_master_volume(0.5)
    eng.update()
    assert eng.target_gains()["lake"] == pytest.approx(before * 0.1)
    eng.set_environment_volume("safe_place", 0.5)
    eng.update()
    assert eng.target_gains()["lake"] == pytest.approx(before * 0.01)
    box.put(SceneState("safe_place", 0, safe_place=True, fade=1.0))
    eng.update()
    assert all(g == 0.0 for g in eng.target_gains().values())
    # an environment without a soundscape: everything fades out
    box.put(SceneState("no_such_place", 0))
    eng.update()
    assert all(g == 0.0 for g in eng.target_gains().values())


def test_the_engine_thread_follows_the_scene_on_its_own() -> None:
    box = SceneStateBox(SceneState("heights", 0))
    eng = engine_mod.SoundEngine(box, output="none", rate_hz=20.0)
    eng.start()
    try:
        assert wait_until(lambda: "wind" in eng.target_gains())
        start = eng.target_gains()["wind"]
        box.put(SceneState("heights", 12))
        assert wait_until(lambda: eng.target_gains().get("wind", 0.0) > start)
    finally:
        eng.stop()


def test_the_engine_measures_the_breath_rate_from_the_scene() -> None:
    now = [0.0]
    box = SceneStateBox(SceneState("safe_place", 0, breath_phase=0.0))
    eng = engine_mod.SoundEngine(box, output="none", clock=lambda: now[0])
    for i in range(1, 40):
        now[0] = i * 0.25
        box.put(SceneState("safe_place", 0, breath_phase=(i * 0.25 * 0.1) % 1.0))  # 6 breaths a minute
        eng.update()
    assert eng._breath_rate_hz == pytest.approx(0.1, rel=0.02)
    assert eng.mixer._breath_rate_hz == pytest.approx(0.1, rel=0.02)


def test_engine_arguments_are_checked() -> None:
    box = SceneStateBox(SceneState("heights", 0))
    with pytest.raises(ValueError, match="ramp_s"):
        engine_mod.SoundEngine(box, ramp_s=0.1)
    with pytest.raises(ValueError, match="rate_hz"):
        engine_mod.SoundEngine(box, rate_hz=500.0)
    with pytest.raises(ValueError, match="master_volume = 1.5 is out of range"):
        engine_mod.SoundEngine(box, master_volume=1.5)
    eng = engine_mod.SoundEngine(box, output="none")
    with pytest.raises(ValueError, match="volume of 'heights' = nan"):
        eng.set_environment_volume("heights", float("nan"))
    with pytest.raises(ValueError, match="use a number"):
        eng.set_master_volume("loud")


def test_the_engine_resolves_each_scene_state_once(caplog) -> None:
    """Polling the same state does not recompute it (nor repeat the registry's warning about an unknown dial)."""
    box = SceneStateBox(SceneState("heights", 4, dials=(("no_such_dial", 1.0),)))
    eng = engine_mod.SoundEngine(box, output="none")
    with caplog.at_level("WARNING", logger="environments.registry"):
        for _ in range(10):
            eng.update()
    assert caplog.text.count("no_such_dial") == 1
    assert eng.target_gains()["wind"] > 0


def test_only_the_output_module_imports_sounddevice() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"^\s*(?:import|from)\s+sounddevice\b", re.MULTILINE)
    product = ("biofeedback", "environments", "protocols", "therapy", "clinician_console", "bench")
    files = [root / "main.py", *(f for top in product for f in (root / top).rglob("*.py"))]
    strays = [str(p.relative_to(root)) for p in files if p.exists() and pattern.search(p.read_text("utf-8"))]
    assert strays == ["environments/sound/output.py"]


@pytest.mark.parametrize("env", ["enclosed", "public_speaking", "dogs"])
def test_the_installed_phobias_sound_louder_up_their_hierarchy(env) -> None:
    """Mapped by the environments' real dials: the feared sound at the top level is louder than at level 0."""
    from environments import registry

    e = registry.get(env)
    top = len(e.levels) - 1

    def loudest(level: int) -> float:
        layers = soundscape_for(env, e.level_values(level), level)
        return max((layer.gain for layer in layers if layer.name in ("hum", "murmur", "dogs")), default=0.0)

    assert loudest(top) > 3 * loudest(0)
