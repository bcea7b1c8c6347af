"""The exception family of the protocols package (bad protocol names, files and values)."""


class ProtocolError(Exception):
    """Base of every error this package raises on purpose; the message names the key, value and fix."""
