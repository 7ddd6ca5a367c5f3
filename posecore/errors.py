"""Errors PoseFit raises for bad input: each names the file or value and what was wrong."""

from __future__ import annotations

MAX_ECHO_CHARS = 200
"""The longest piece of user-provided text (a path, a key, a value) an error message repeats."""

MAX_MESSAGE_CHARS = 1000
"""The longest error line PoseFit prints."""


def shorten(text: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` as one printable line of at most about ``limit`` characters (longer text is cut in the
    middle and says how much was left out), so a hostile file name or value cannot flood the terminal."""
    s = str(text)
    s = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in s)
    if len(s) <= limit:
        return s
    head = limit * 2 // 3
    tail = limit - head
    return f"{s[:head]}...[{len(s) - head - tail} characters left out]...{s[-tail:]}"


class PoseFitError(Exception):
    """Base class: a clear, one-line message meant for the user."""


class InputFileError(PoseFitError):
    """A file the user gave could not be used (missing, unreadable, wrong content)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{shorten(self.path)}: {shorten(problem, MAX_MESSAGE_CHARS - MAX_ECHO_CHARS)}")


class ParameterError(PoseFitError):
    """A parameter has the wrong shape or a non-finite value."""


class BackendUnavailableError(PoseFitError):
    """An optional backend (renderer, body model) is not installed; the message says how to get it."""
