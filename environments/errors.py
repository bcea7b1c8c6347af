"""The exception family of the environments package.

Raised for conditions a user can fix (an unknown environment, a level out of range,
a display that cannot be opened, SteamVR not running); ``main.py`` prints the
message as one line and exits with status 2.
"""


class RenderError(Exception):
    """Base of every error this package raises on purpose."""


class UnknownEnvironmentError(RenderError):
    """No environment of that name; the message lists the known ones."""


class LevelOutOfRangeError(RenderError):
    """A level outside the environment's described levels."""


class DisplayUnavailableError(RenderError):
    """The display cannot be opened (no screen, no SteamVR, no EGL); the message says what to start or use."""


class DialError(RenderError):
    """A dial that the environment does not have, or a value outside its range; the message lists the valid ones."""
