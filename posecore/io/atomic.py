"""Write files and folders so that a crash or an exception never leaves a half-written result.

Files: the data goes to a temporary file in the same folder, is flushed and fsync'ed, then
``os.replace``-d over the target (atomic on POSIX and Windows within one file system). Readers see
either the old file or the complete new one.

Folders: :func:`atomic_output_dir` yields a temporary folder beside the final one; the caller
writes everything there; only when the ``with`` block ends without an exception is the folder
renamed into place. See its docstring for what happens to an existing folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from posecore.errors import ParameterError

OUTPUT_MARKER = ".posefit-output"
"""Name of the empty file :func:`atomic_output_dir` puts in every folder it creates. An existing
non-empty folder is replaced only when it holds this marker (i.e. PoseFit wrote it)."""


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file open for writing; on success it replaces ``path`` atomically.

    The temporary file is created beside ``path`` with the usual permissions (0o666 minus the
    umask; an existing target's mode is kept). Parent folders are created. On any exception the
    temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: is a directory, cannot write a file there")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            if target.exists():
                os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    with _atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded as ``encoding``; newlines are written as given
    (no platform translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def _as_plain_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise ParameterError(
            f"array {name!r} has dtype object: .npz result files hold only numeric or text arrays "
            f"(they are read with allow_pickle=False)"
        )
    return arr


def save_npz_atomic(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Save named arrays as an uncompressed ``.npz`` at exactly ``path``, atomically.

    Args:
        path: the target file (unlike ``np.savez``, no ``.npz`` suffix is appended).
        **arrays: name -> array-like (numpy arrays, torch tensors, numbers, strings). Object arrays
            are refused, so that the file loads with ``np.load(path, allow_pickle=False)``.

    Raises:
        ParameterError: an array has dtype object.
    """
    plain = {name: _as_plain_array(name, value) for name, value in arrays.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **plain)  # type: ignore[arg-type]
    atomic_write_bytes(path, buffer.getvalue())


def _is_replaceable(directory: Path) -> bool:
    """A folder may be replaced when it is empty or PoseFit wrote it (it holds the marker)."""
    return (directory / OUTPUT_MARKER).is_file() or not any(directory.iterdir())


@contextlib.contextmanager
def atomic_output_dir(final_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Build an output folder in a temporary folder and move it into place only on success.

    Usage::

        with atomic_output_dir("results/photo1") as tmp:
            save_npz_atomic(tmp / "fit.npz", ...)
            save_image(tmp / "overlay.png", ...)
        # results/photo1 now holds fit.npz and overlay.png (and the marker file)

    Semantics:

    - The temporary folder is ``<parent>/.<name>.tmp-<random>`` (same file system as the final
      folder, so the final step is a rename, not a copy). Parent folders are created.
    - On an exception (including ``KeyboardInterrupt``) inside the block the temporary folder and
      everything in it are deleted, the exception propagates, and ``final_dir`` is untouched.
    - On success, if ``final_dir`` does not exist the temporary folder is renamed to it. If it
      exists, its **whole content is replaced** (not merged): it is first renamed aside to
      ``.<name>.old-<random>``, the new folder is renamed into place, then the old one is deleted.
      Between those two renames (microseconds) ``final_dir`` does not exist; if the second rename
      fails, the old folder is put back.
    - To protect user data, an existing ``final_dir`` is replaced only if it is empty or holds the
      :data:`OUTPUT_MARKER` file that this function writes into every folder it produces; anything
      else raises ``FileExistsError`` *before* the block runs (and again at commit time if the folder
      appeared meanwhile). A ``final_dir`` that is a file raises ``NotADirectoryError``.
    - A process killed with SIGKILL can leave a hidden ``.<name>.tmp-*`` folder behind; it is never
      mistaken for a result.

    Yields:
        The temporary folder (a :class:`pathlib.Path`), initially holding only the marker file.
    """
    final = Path(final_dir)
    _check_final(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        (tmp / OUTPUT_MARKER).touch()
        yield tmp
        _check_final(final)
        _commit(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)


def _check_final(final: Path) -> None:
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(f"{final}: exists and is not a folder; choose another output folder")
    if final.is_dir() and not _is_replaceable(final):
        raise FileExistsError(
            f"{final}: folder exists, is not empty and was not written by PoseFit (no {OUTPUT_MARKER} "
            f"file); refusing to replace it: choose a new or empty output folder"
        )


def _commit(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.rename(tmp, final)
        return
    old = final.with_name(f".{final.name}.old-{secrets.token_hex(6)}")
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)
