"""Checks every reader of a user-given file starts with: it exists, it is a regular file, it is not huge.

``/dev/zero``, a FIFO or a socket given as an input file would make a reader hang or read forever, so
only regular files are accepted. A file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the
open descriptor, so a path swapped for a FIFO between the check and the open cannot block the reader.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from posecore.errors import InputFileError

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
}


def _not_regular(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def existing_file(path: str | os.PathLike[str], kind: str) -> Path:
    """``path`` as a Path, or InputFileError when it is missing, a directory or not a regular file.

    Args:
        path: the file the user gave. kind: what it should be, for the message ("an image file").
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise InputFileError(p, "file not found") from None
    except OSError as exc:
        raise InputFileError(p, f"cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise InputFileError(p, f"is a directory, expected {kind}")
    if not stat.S_ISREG(mode):
        raise InputFileError(p, f"is {_not_regular(mode)}, expected {kind} (a regular file)")
    return p


def open_regular_file(path: str | os.PathLike[str], kind: str, max_bytes: int | None = None) -> BinaryIO:
    """Open a user's file for binary reading, refusing anything but a regular file of at most ``max_bytes``.

    Args:
        path: the file. kind: what it should be ("an .npz archive"), for messages.
        max_bytes: the largest size a legitimate file of this kind can have, or None for no limit.

    Returns:
        A binary file object (the caller closes it).

    Raises:
        InputFileError: missing, a directory, a device/FIFO/socket, unreadable, or larger than ``max_bytes``.
    """
    p = existing_file(path, kind)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise InputFileError(p, f"cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped after existing_file's check
            raise InputFileError(p, f"is {_not_regular(info.st_mode)}, expected {kind} (a regular file)")
        if max_bytes is not None and info.st_size > max_bytes:
            raise InputFileError(
                p, f"is {info.st_size:,} bytes, more than {kind} can legitimately be ({max_bytes:,} bytes at most)"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike[str], kind: str, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` (see :func:`open_regular_file`)."""
    with open_regular_file(path, kind, max_bytes) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # grew while being read
        raise InputFileError(path, f"is larger than {kind} can legitimately be ({max_bytes:,} bytes at most)")
    return data
