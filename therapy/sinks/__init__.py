"""Live-session subscribers that carry a session out of vrex: LSL outlets and the session's own XDF file.

Both map the same items (events and raw ECG chunks) to the same streams
(:mod:`therapy.sinks.streams`), so what a lab records over LSL and what vrex
writes to ``session.xdf`` have identical names, channels, units and timestamps.
"""
