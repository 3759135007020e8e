"""The one exception type effscale shows to users as a one-line message."""

from __future__ import annotations


class EffscaleError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback.

    ``exit_code`` is 2 for usage errors (bad arguments, bad files) and 1 for runtime failures.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(EffscaleError):
    """A config file or config value is invalid."""
