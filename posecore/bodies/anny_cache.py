"""Anny's first use, made cheap: build only the model data PoseFit loads, fast.

``anny.Anny()`` builds its model data once per machine and caches it (safetensors under the cache folder,
``v<N>/<builder>_<hash>.safetensors``). Left to itself it writes three files, about 790 MB, and takes minutes:

- ``load_data_*`` (about 540 MB): every MakeHuman target, as read from the text files;
- ``build_model_data_*`` (about 210 MB): the rigged, edited, triangulated mesh with its blend shapes;
- ``build_compact_model_data_*`` (about 50 MB): the phenotype blend shapes reduced to a compact basis.

An ``Anny()`` whose compact file exists loads only that one; the other two are intermediate steps PoseFit never
reads again. Most of the time went into parsing about 1,100 gzipped target files (and 52 plain-text expression
targets) line by line with one small tensor per line. :func:`fast_build` changes exactly those two things while
Anny builds: the targets are parsed with numpy's C reader (the same float64 values, bit for bit:
``tests/test_anny_cache.py``), and only the compact file is written. Everything else (which targets, the rig,
the compaction) is Anny's own code. ``python -m posecore.bench first-use`` measures a build from nothing.

:func:`prune` removes intermediate files an earlier, plain build left behind.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import pathlib
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

INTERMEDIATE_PREFIXES = ("load_data_", "build_model_data_")
"""Cache files of Anny's intermediate build steps (PoseFit loads only ``build_compact_model_data_*``)."""
FINAL_PREFIX = "build_compact_model_data_"


def read_target_offsets(text: bytes, filename, vertices_count: int) -> np.ndarray:
    """One MakeHuman target's text (``index dx dy dz`` per line; blank and ``#`` lines skipped) -> (vertices_count,
    3) float64 offsets in the file's units, zero for vertices the file does not name.

    Values are exactly those ``float()`` gives (numpy's C parser rounds correctly); a repeated index keeps its last
    line, as anny does. Raises ValueError naming the file for rows that are not four numbers or an index out of
    range.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": an empty target is valid
        try:
            table = np.loadtxt(io.BytesIO(text), dtype=np.float64, comments="#", ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{filename}: expected 'index dx dy dz' lines ({exc})") from exc
    offsets = np.zeros((vertices_count, 3), dtype=np.float64)
    if table.size == 0:
        return offsets
    if table.shape[1] != 4:
        raise ValueError(f"{filename}: expected 'index dx dy dz' lines, got {table.shape[1]} values per line")
    ids = table[:, 0].astype(np.int64)
    if ids.min() < 0 or ids.max() >= vertices_count or not np.array_equal(ids, table[:, 0]):
        raise ValueError(f"{filename}: vertex index out of range 0..{vertices_count - 1}")
    offsets[ids] = table[:, 1:]  # the last line of a repeated index wins, as in anny
    return offsets


def load_blend_shape_fast(filename, vertices_count: int, world_transformation, dtype: torch.dtype) -> torch.Tensor:
    """Drop-in for ``anny.models.full_model.load_blend_shape``: one gzipped MakeHuman target file (decimetres)
    -> (vertices_count, 3) offsets in Anny's frame (metres, Z-up). Same values as anny's line-by-line parser."""
    with gzip.open(filename, "rb") as archive:
        text = archive.read()
    offsets = torch.from_numpy(read_target_offsets(text, filename, vertices_count)).to(dtype)
    return world_transformation.apply(offsets)


def load_plain_target_fast(filename, vertices_count: int, world_transformation, dtype: torch.dtype) -> torch.Tensor:
    """Drop-in for ``anny.models.facial_actions.load_plain_target``: the same for a plain-text target (the
    facial expressions)."""
    text = pathlib.Path(filename).read_bytes()
    offsets = torch.from_numpy(read_target_offsets(text, filename, vertices_count)).to(dtype)
    return world_transformation.apply(offsets)


@contextlib.contextmanager
def fast_build(on_step: Callable[[str], object] | None = None) -> Iterator[None]:
    """While active: anny parses targets with :func:`load_blend_shape_fast` and :func:`load_plain_target_fast`,
    caches only the final (compact) model data, and torch may use every core (restored afterwards). ``on_step``
    receives a short description of each build step as anny logs it."""
    import anny.models.facial_actions as facial_actions
    import anny.models.full_model as full_model
    from anny.models.model_data import ModelData

    original_load, original_save = full_model.load_blend_shape, ModelData.save_safetensors
    original_plain_load = facial_actions.load_plain_target

    def save_final_only(self, path) -> None:
        if not pathlib.Path(path).name.startswith(INTERMEDIATE_PREFIXES):
            original_save(self, path)

    on_step = on_step or _listener
    handler = _StepHandler(on_step) if on_step is not None else None
    anny_logger = logging.getLogger("anny")
    previous_level = anny_logger.level
    if handler is not None:
        anny_logger.addHandler(handler)
        anny_logger.setLevel(logging.INFO)
    full_model.load_blend_shape = load_blend_shape_fast
    facial_actions.load_plain_target = load_plain_target_fast
    ModelData.save_safetensors = save_final_only
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, os.cpu_count() or 1))  # the build's SVD uses every core, once
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        full_model.load_blend_shape = original_load
        facial_actions.load_plain_target = original_plain_load
        ModelData.save_safetensors = original_save
        if handler is not None:
            anny_logger.removeHandler(handler)
            anny_logger.setLevel(previous_level)


_listener: Callable[[str], object] | None = None


@contextlib.contextmanager
def report_steps_to(callback: Callable[[str], object]) -> Iterator[None]:
    """While active, a build started anywhere in this process (``AnnyBody()``) reports its steps to
    ``callback`` (a user interface's status line, say)."""
    global _listener
    previous, _listener = _listener, callback
    try:
        yield
    finally:
        _listener = previous


class _StepHandler(logging.Handler):
    """Turns anny's build log messages into short step descriptions."""

    STEPS = (
        ("Loading macrodetails", "reading the body shape targets"),
        ("Cache not found, loading data", "reading the MakeHuman data"),
        ("building model data", "building the model"),
        ("Loading cached model data", "loading the cached model"),
    )

    def __init__(self, on_step: Callable[[str], object]) -> None:
        super().__init__(logging.INFO)
        self.on_step = on_step

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for start, words in self.STEPS:
            if start.lower() in message.lower():
                self.on_step(words)
                return


def is_ready(cache_dir: pathlib.Path) -> bool:
    """True when ``cache_dir`` holds Anny's final model data (the next ``Anny()`` only loads it)."""
    return any(pathlib.Path(cache_dir).glob(f"v*/{FINAL_PREFIX}*.safetensors"))


def prune(cache_dir: pathlib.Path) -> int:
    """Delete intermediate build files once the final model data exists; returns the bytes freed."""
    cache_dir = pathlib.Path(cache_dir)
    if not is_ready(cache_dir):
        return 0
    freed = 0
    for path in cache_dir.glob("v*/*.safetensors"):
        if path.name.startswith(INTERMEDIATE_PREFIXES):
            freed += path.stat().st_size
            path.unlink()
    return freed


def cache_size(cache_dir: pathlib.Path) -> int:
    """Bytes of every file under ``cache_dir``."""
    return sum(p.stat().st_size for p in pathlib.Path(cache_dir).rglob("*") if p.is_file())
