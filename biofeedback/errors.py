"""The exception family of the biofeedback package.

Errors of this family are raised for conditions a user can fix (a bad sensor
spec, a missing file, a sensor that cannot be found); ``main.py`` prints them as
one line and exits with status 2.
"""


class BiofeedbackError(Exception):
    """Base of every error this package raises on purpose."""


class SensorSpecError(BiofeedbackError):
    """A ``--sensor`` value that names no known sensor kind or lacks its argument."""


class SensorUnavailableError(BiofeedbackError):
    """A sensor that cannot be opened: not found, no adapter, unreadable file."""
