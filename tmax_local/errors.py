"""One user-facing error type, shown the same way by the CLI and the TUI."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConversionError",
    "HubUnreachable",
    "Interrupted",
    "ModelNotFound",
    "TmaxError",
]


class TmaxError(Exception):
    """An error the user can act on: printed as one line, never as a traceback.

    ``title`` is a short heading (used by the TUI); ``str(err)`` is the message;
    ``exit_code`` is what the CLI exits with.
    """

    title = "Error"
    exit_code = 1

    def __init__(self, message: str, *, title: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ConversionError(TmaxError):
    title = "Conversion failed"


class HubUnreachable(ConversionError):
    """The Hugging Face Hub cannot be reached and the local cache lacks what is needed."""

    title = "Offline"


class ModelNotFound(TmaxError):
    title = "Model not available"


class ConfigError(TmaxError):
    title = "Configuration error"


class Interrupted(TmaxError):
    title = "Interrupted"
    exit_code = 130
