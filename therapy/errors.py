"""The exception family of the therapy package (session set-up, output directory, store)."""


class TherapyError(Exception):
    """Base of every error this package raises on purpose; the message says what to change."""


class OutputDirError(TherapyError):
    """The session's output directory cannot be created or written."""
