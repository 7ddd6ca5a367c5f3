"""Read JSON files from strangers: a regular file of bounded size, bounded nesting, no giant integers.

``json.loads`` recurses (a file nested 100,000 deep is a RecursionError) and turns a 5,000-digit integer into an
int in quadratic time; both end here as one :class:`~posecore.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from posecore.errors import InputFileError
from posecore.io.paths import read_regular_file

MAX_JSON_DEPTH = 32
"""Deepest nesting of lists/dicts any PoseFit JSON file needs."""

MAX_INTEGER_DIGITS = 30


def _parse_int(text: str) -> int:
    """JSON integers of at most 30 digits (a 5,000-digit one is no parameter and costs quadratic time)."""
    if len(text) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def load_json_safely(path: str | os.PathLike[str], kind: str, max_bytes: int) -> Any:
    """The value of a JSON file.

    Args:
        path: the file. kind: what it should be, for messages ("a landmarks.json file").
        max_bytes: largest file read.

    Raises:
        InputFileError: missing or not a regular file, too large, not UTF-8 JSON, nested deeper than
            :data:`MAX_JSON_DEPTH`, or holding integers of more than 30 digits.
    """
    p = Path(path)
    data = read_regular_file(p, kind, max_bytes)
    try:
        value = json.loads(data.decode("utf-8"), parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputFileError(p, f"is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(p, f"cannot be read as UTF-8 JSON text: {exc}") from None
    except RecursionError:
        raise InputFileError(p, f"is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:  # from _parse_int
        raise InputFileError(p, f"holds {exc}; expected parameter values") from None
    if _nesting_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise InputFileError(p, f"is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return value


def _nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists/dicts nest in ``value`` (iterative; stops counting past ``limit``)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
