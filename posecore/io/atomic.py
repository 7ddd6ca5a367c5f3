"""Write files and folders so that a crash or an exception never leaves a half-written result.

Files: the data goes to a temporary file in the same folder, is flushed and fsync'ed, then
``os.replace``-d over the target (atomic on POSIX and Windows within one file system). Readers see
either the old file or the complete new one.

Folders: :func:`atomic_output_dir` yields a temporary folder beside the final one; the caller
writes everything there; only when the ``with`` block ends without an exception are its files moved
into place. PoseFit never deletes or overwrites what it did not write: each output folder holds a
manifest (:data:`OUTPUT_MARKER`) of the entries PoseFit put there. See its docstring.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from posecore.errors import ParameterError, PoseFitError, shorten

OUTPUT_MARKER = ".posefit-output"
"""Name of the manifest :func:`atomic_output_dir` puts in every output folder: JSON
``{"written_by": "PoseFit", "entries": [names]}`` listing what PoseFit wrote there. A non-empty folder
without it is never written into; entries it does not list are never touched. (Older PoseFit versions
wrote it empty: then no old entry is deleted, and only entries of the same name are replaced.)"""


class OutputFolderError(PoseFitError):
    """``--out`` cannot be used: what it is, and what to do, in one line."""


class OutputFolderExistsError(OutputFolderError, FileExistsError):
    """The output folder holds files PoseFit did not write (and would have to replace)."""


class OutputNotAFolderError(OutputFolderError, NotADirectoryError):
    """The output path is a file, or a symbolic link to something that is not a folder."""


class OutputNotWritableError(OutputFolderError, PermissionError):
    """The output folder (or the folder it would be created in) is not writable."""


_COMMITTED: list[Path] = []
_COMMITTED_LOCK = threading.Lock()


def committed_output_dirs() -> list[Path]:
    """Output folders :func:`atomic_output_dir` completed in this process, oldest first (so that an
    interrupted command can say exactly what was written)."""
    with _COMMITTED_LOCK:
        return list(_COMMITTED)


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


def _read_manifest(directory: Path) -> set[str] | None:
    """Names PoseFit wrote into ``directory`` per its manifest; None for a legacy (empty) marker."""
    try:
        text = (directory / OUTPUT_MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        record = json.loads(text) if text.strip() else None
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("entries"), list):
        return None
    return {n for n in record["entries"] if isinstance(n, str) and n and "/" not in n and n not in (".", "..")}


def _manifest_text(names: set[str]) -> str:
    return json.dumps({"written_by": "PoseFit", "entries": sorted(names)}, indent=1)


def claim_output_dir(path: str | os.PathLike[str]) -> Path:
    """Make ``path`` a PoseFit output folder that is filled piece by piece (a batch run's ``OUT``).

    Creates the folder (and parents) and, if it has none, writes the manifest with no entries: a re-run
    (resuming) passes :func:`check_output_dir`, while nothing in the folder is claimed as PoseFit's to replace.
    Call :func:`check_output_dir` first: a foreign non-empty folder is refused there.
    """
    folder = check_output_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / OUTPUT_MARKER).is_file():
        atomic_write_text(folder / OUTPUT_MARKER, _manifest_text(set()))
    return folder


def _foreign_entries(directory: Path) -> list[str]:
    """Entries of an existing output folder that PoseFit did not write (its manifest does not list them)."""
    listed = _read_manifest(directory)
    names = sorted(p.name for p in directory.iterdir() if p.name != OUTPUT_MARKER)
    if listed is None:
        return names if not (directory / OUTPUT_MARKER).is_file() else []
    return [n for n in names if n not in listed]


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder``: its permission bits allow it (``os.access``) and creating (then
    removing) an empty probe folder there works. The probe catches what permission bits do not show, for root too:
    read-only and virtual file systems (``/proc``, ``/sys``), read-only mounts, full quotas."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        probe = tempfile.mkdtemp(prefix=".posefit-probe-", dir=folder)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return True


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Check, before any work is done, that results can be written to the folder ``path``.

    Follows a symbolic link to a folder (the link stays; its target receives the files).

    Returns:
        The folder results will go to (the link's target for a link).

    Raises:
        OutputNotAFolderError: ``path`` is a file, a dangling link, or a link to a file.
        OutputFolderExistsError: ``path`` is a non-empty folder PoseFit did not write (no manifest).
        OutputNotWritableError: the folder, or the nearest existing folder above it, is not writable.
    """
    given = Path(path)
    final = given
    if given.is_symlink():
        target = Path(os.path.realpath(given))
        if not target.exists():
            raise OutputNotAFolderError(
                f"{shorten(given)}: is a symbolic link to {shorten(target)}, which does not exist; "
                "remove the link or create its target folder"
            )
        final = target
    if final.exists() and not final.is_dir():
        raise OutputNotAFolderError(f"{shorten(given)}: exists and is not a folder; choose another output folder")
    if final.is_dir():
        if not (final / OUTPUT_MARKER).is_file() and any(final.iterdir()):
            raise OutputFolderExistsError(
                f"{shorten(given)}: folder exists, is not empty and was not written by PoseFit (no {OUTPUT_MARKER} "
                f"file); refusing to replace it: choose a new or empty output folder"
            )
        for folder in (final, final.parent):
            if not _writable(folder):
                raise OutputNotWritableError(
                    f"{shorten(folder)}: folder is not writable (no permission, or a read-only file system)"
                )
        return final
    ancestor = final.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputNotAFolderError(f"{shorten(ancestor)}: is not a folder, so {shorten(given)} cannot be created")
    if not _writable(ancestor):
        raise OutputNotWritableError(
            f"{shorten(ancestor)}: folder is not writable (no permission, or a read-only file system), so "
            f"{shorten(given)} cannot be created"
        )
    return final


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs (the few renames of a commit), then deliver them: the
    output folder is then always in its old or its new state, never in between. Main thread only
    (elsewhere Python delivers signals to the main thread anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    wanted = [signal.SIGINT, getattr(signal, "SIGTERM", signal.SIGINT)]
    previous = {}
    for sig in dict.fromkeys(wanted):
        with contextlib.suppress(ValueError, OSError):
            previous[sig] = signal.signal(sig, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


@contextlib.contextmanager
def atomic_output_dir(final_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Build an output folder in a temporary folder and move its content into place only on success.

    Usage::

        with atomic_output_dir("results/photo1") as tmp:
            save_npz_atomic(tmp / "fit.npz", ...)
            save_image(tmp / "overlay.png", ...)
        # results/photo1 now holds fit.npz and overlay.png (and the manifest)

    Semantics:

    - :func:`check_output_dir` runs first (and again at commit time): a file, a dangling link, a non-empty
      folder without PoseFit's manifest, or an unwritable place raises its one-line error before the
      block runs. A symbolic link to a folder is followed (the link stays).
    - The temporary folder is ``<parent>/.<name>.tmp-<random>`` (same file system, so moving is a rename).
      Parent folders are created. It is always removed when the ``with`` ends, whatever happened.
    - On an exception (including ``KeyboardInterrupt``, and SIGTERM where the CLI turns it into one)
      inside the block, nothing is moved: ``final_dir`` is untouched.
    - On success, a new folder is renamed into place. Into an existing output folder, each new entry
      replaces the entry of the same name; entries the old manifest lists and the new output lacks are
      deleted; entries the manifest does not list (the user's own files) are kept, and if one has the name
      of a new entry the commit is refused (``OutputFolderExistsError``) before anything moves. The
      manifest is updated first (listing old and new entries) and last (the new ones). SIGINT/SIGTERM are
      held during these renames, so an interrupt leaves the folder entirely old or entirely new; only a
      SIGKILL or power loss mid-commit can leave some entries new and some old (each complete).

    Yields:
        The temporary folder (a :class:`pathlib.Path`), initially empty but for the manifest.
    """
    final = check_output_dir(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        (tmp / OUTPUT_MARKER).write_text(_manifest_text(set()), encoding="utf-8")
        yield tmp
        with _signals_deferred():
            final = check_output_dir(final_dir)
            _commit(tmp, final)
            with _COMMITTED_LOCK:
                _COMMITTED.append(final)
    finally:
        with _signals_deferred():  # an interrupt now would leave the hidden temporary folder behind
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(final.parent)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _commit(tmp: Path, final: Path) -> None:
    new = {p.name for p in tmp.iterdir() if p.name != OUTPUT_MARKER}
    if not final.exists():
        (tmp / OUTPUT_MARKER).write_text(_manifest_text(new), encoding="utf-8")
        os.rename(tmp, final)
        return
    old = _read_manifest(final)
    foreign = set(_foreign_entries(final))
    clash = sorted(n for n in new if n in foreign or (old is None and (final / n).is_dir()))
    if clash:
        raise OutputFolderExistsError(
            f"{shorten(final)}: holds {shorten(clash[:5])}, which PoseFit did not write and would have to "
            "replace; refusing: move them or choose another output folder"
        )
    atomic_write_text(final / OUTPUT_MARKER, _manifest_text(new | (old or set())))
    for name in sorted(new):
        target = final / name
        if (tmp / name).is_dir() and target.exists():
            _remove(target)
        os.replace(tmp / name, target)
    for name in sorted((old or set()) - new):
        _remove(final / name)
    atomic_write_text(final / OUTPUT_MARKER, _manifest_text(new))
