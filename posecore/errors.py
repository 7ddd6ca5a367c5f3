"""Errors PoseFit raises for bad input: each names the file or value and what was wrong."""

from __future__ import annotations


class PoseFitError(Exception):
    """Base class: a clear, one-line message meant for the user."""


class InputFileError(PoseFitError):
    """A file the user gave could not be used (missing, unreadable, wrong content)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ParameterError(PoseFitError):
    """A parameter has the wrong shape or a non-finite value."""


class BackendUnavailableError(PoseFitError):
    """An optional backend (renderer, body model) is not installed; the message says how to get it."""
