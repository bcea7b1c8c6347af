"""Where the mixed sound goes: the audio device through ``sounddevice`` (PortAudio), or nowhere.

The only module that imports ``sounddevice``. PortAudio calls
:meth:`SoundDeviceOutput` 's callback on its own real-time thread for each
block; the callback asks the mixer for the block and never raises (a failure is
logged once and the block is silence). Where there is no audio device (CI, a
server, a Linux machine without the PortAudio library ``libportaudio2``)
:func:`open_output` logs that once and returns a :class:`NullOutput`: the
engine still follows the scene (its target gains are visible to tests), and
nothing is played.

Why not pyglet's media player: importing ``pyglet.media`` imports ``pyglet.gl``
and creates pyglet's hidden shadow window with a GL context on the importing
thread (it fails outright without an X display), which would tangle the sound
thread with the render thread's GL; PortAudio has no such tie.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from environments.sound.synth import CHANNELS, SAMPLE_RATE

log = logging.getLogger(__name__)

Render = Callable[[int], np.ndarray]  # frames -> (frames, 2) float32


class AudioOutput(Protocol):
    """Plays what ``render`` returns, block by block, until stopped."""

    active: bool  # True when sound really reaches a device
    description: str

    def start(self, render: Render) -> None: ...

    def stop(self) -> None: ...


class NullOutput:
    """No audio device: plays nothing, raises nothing."""

    active = False

    def __init__(self, why: str = "sound is off") -> None:
        self.description = why

    def start(self, render: Render) -> None:
        pass

    def stop(self) -> None:
        pass


class SoundDeviceOutput:
    """The default output device through PortAudio, fed from its callback thread."""

    active = True

    def __init__(self, *, sample_rate: int = SAMPLE_RATE, device: int | str | None = None,
                 sd: Any = None) -> None:
        if sd is None:
            import sounddevice as sd  # OSError without the PortAudio library
        self._sd = sd
        info = sd.query_devices(device, kind="output")  # raises without an output device
        self.description = f"{info.get('name', 'audio device')} ({sample_rate} Hz, stereo)"
        self._sample_rate = sample_rate
        self._device = device
        self._stream: Any = None
        self._failed = False

    def start(self, render: Render) -> None:
        def callback(outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
            try:
                outdata[:] = render(frames)
            except Exception:  # never raise into PortAudio's thread
                outdata.fill(0)
                if not self._failed:
                    self._failed = True
                    log.exception("sound: mixing a block failed; playing silence for failed blocks")

        self._stream = self._sd.OutputStream(samplerate=self._sample_rate, channels=CHANNELS, dtype="float32",
                                             device=self._device, callback=callback, latency="high")
        self._stream.start()

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                log.warning("sound: closing the audio stream failed", exc_info=True)


def open_output(kind: str = "auto", *, sample_rate: int = SAMPLE_RATE) -> AudioOutput:
    """The audio device (``auto``/``device``) or nothing (``none``); ``auto`` falls back to nothing, logged once."""
    if kind == "none":
        return NullOutput("sound is off (no output requested)")
    try:
        return SoundDeviceOutput(sample_rate=sample_rate)
    except Exception as exc:  # OSError (no PortAudio), PortAudioError (no device), ImportError
        why = f"no audio device ({type(exc).__name__}: {exc}); sound is off"
        if kind == "device":
            raise
        hint = " (on Linux: apt install libportaudio2)" if isinstance(exc, (OSError, ImportError)) else ""
        log.info("sound: %s%s", why, hint)
        return NullOutput(why)
