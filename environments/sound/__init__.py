"""Procedural sound for the environments: soundscapes made with numpy, mixed without pops, played where a device is.

- :mod:`.synth`: seeded, seamlessly looping stereo buffers (wind, city, lift hum, creaks, crowd murmur,
  dogs, spider rustle, room tone, surf, leaves, birds, lake) and the breathing pacer's tone;
- :mod:`.soundscape`: :func:`soundscape_for` maps an environment, its dial values and level to
  :class:`Layer` s (name, buffer spec, gain); volume semantics (:func:`volume_to_gain`);
- :mod:`.mixer`: mixes layers block by block, ramping every gain change, crossfading buffers;
- :mod:`.output`: the audio device through ``sounddevice`` (the only module importing it), or nothing;
- :mod:`.engine`: :class:`SoundEngine` follows the latest ``SceneState`` on its own thread.
"""

from environments.sound.engine import SoundEngine
from environments.sound.mixer import Mixer, render_offline
from environments.sound.output import NullOutput, open_output
from environments.sound.soundscape import (
           Layer,
           db_to_gain,
           mapped_environments,
           soundscape_for,
           volume_to_gain,
)
from environments.sound.synth import SAMPLE_RATE, SoundSpec, synthesize

__all__ = [
           "SAMPLE_RATE",
           "Layer",
           "Mixer",
           "NullOutput",
           "SoundEngine",
           "SoundSpec",
           "db_to_gain",
           "mapped_environments",
           "open_output",
           "render_offline",
           "soundscape_for",
           "synthesize",
           "volume_to_gain",
]
