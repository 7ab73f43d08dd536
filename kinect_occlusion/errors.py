"""Errors that end a command with one clear line instead of a traceback."""

MAX_LINE_CHARS = 200  # one line of someone else's message (Triton's reason, torch's error) at most


def one_line(text: object, limit: int = MAX_LINE_CHARS) -> str:
    """The first non-blank line of ``text``, whitespace collapsed, at most ``limit`` characters
    (a server's reason or a library's error can carry a traceback or run to pages)."""
    first = next((line for line in str(text).splitlines() if line.strip()), "")
    return " ".join(first.split())[:limit]


class UserError(Exception):
    """A problem the user can fix (bad file, bad config, missing checkpoint).

    The CLI prints ``str(error)`` on one line to stderr and exits with ``exit_code``.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SourceError(UserError):
    """A frame source cannot be opened or read (missing/corrupt file, no camera)."""


class CheckpointError(UserError):
    """A model checkpoint is missing or does not match the configured model."""


class Cancelled(Exception):
    """A long computation stopped early because its ``should_stop`` check turned true (shutdown)."""


class ServiceError(RuntimeError):
    """An outside service a worker calls (an inference server) is down, refusing or too slow.

    An expected operational error: the worker counts it as a frame error and logs one line, no
    traceback (rate-limited), and goes on.
    """
