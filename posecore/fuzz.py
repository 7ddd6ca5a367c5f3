"""Fuzz PoseFit's readers of untrusted files: ``python -m posecore.fuzz --seconds 600``.

Each reader (:data:`READERS`: init pickles / npz / json, the SMPL-X model loader, images, masks) is fed
files that `hypothesis <https://hypothesis.readthedocs.io>`_ derives from valid seed files generated here
(byte flips, insertions, deletions, truncation, huge integers written over size fields, splices of two
seeds), from structured generators (pickles of random nested data, ``.npz`` archives of random arrays,
stored or deflated) and from random bytes. A read may succeed or fail with PoseFit's own error
(:class:`~posecore.errors.PoseFitError`); anything else - another exception, ``MemoryError`` under the
address-space limit this process sets (``--memory-mb``), a crash - is a finding. Before each read the
input is written to ``--keep-dir`` as ``last-<reader>.<ext>``, so a crash that kills the process leaves
its input behind.

Needs the ``hypothesis`` package (pinned in requirements.txt). CI runs a short budget
(tests/test_fuzz_readers.py); run longer budgets by hand.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posecore.errors import PoseFitError

EXIT_READ = 0
EXIT_POSEFIT_ERROR = 3

READERS: dict[str, str] = {
    "init-pkl": ".pkl",
    "init-npz": ".npz",
    "init-json": ".json",
    "model": ".npz",
    "image": ".png",
    "mask": ".png",
    "vposer": ".pt",
}
"""Reader name -> file extension it is fed."""


def _read(reader: str, path: Path) -> None:
    if reader in ("init-pkl", "init-npz", "init-json"):
        from posecore.io.init_files import read_init_sequence

        read_init_sequence(path)
    elif reader == "model":
        from posecore.bodies.smplx_file import load_smplx_file

        load_smplx_file(path, min_vertices=1)
    elif reader == "image":
        from posecore.io.images import load_image

        load_image(path)
    elif reader == "mask":
        from posecore.io.images import load_mask

        load_mask(path)
    elif reader == "vposer":
        from posecore.io.vposer_files import load_vposer

        load_vposer(path)
    elif reader == "pickle":
        from posecore.io.safe_pickle import load_pickle_safely

        load_pickle_safely(path)
    else:
        raise ValueError(f"unknown reader {reader!r}: choose from {', '.join(READERS)}")


def read_one(reader: str, path: str | os.PathLike[str]) -> int:
    """Read ``path`` with ``reader`` (a key of :data:`READERS`, or "pickle" for the bare
    :func:`~posecore.io.safe_pickle.load_pickle_safely`); print PoseFit's error as one line. Returns
    :data:`EXIT_READ` or :data:`EXIT_POSEFIT_ERROR`; any other exception propagates (a finding)."""
    try:
        _read(reader, Path(path))
    except PoseFitError as exc:
        print(f"posefit: error: {exc}")
        return EXIT_POSEFIT_ERROR
    return EXIT_READ


# ---------------------------------------------------------------------------------------------- seeds
def _npz_bytes(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _init_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "global_orient": rng.normal(size=(1, 3)).astype(np.float32),
        "body_pose": rng.normal(size=(1, 63)).astype(np.float32) * 0.2,
        "betas": rng.normal(size=(1, 10)).astype(np.float32),
        "left_hand_pose": rng.normal(size=(1, 12)).astype(np.float32),
        "camera_rotation": np.eye(3, dtype=np.float32)[None],
        "camera_translation": np.array([[0.0, 0.2, 10.0]], np.float32),
    }


def tiny_smplx_arrays(num_vertices: int = 12) -> dict[str, np.ndarray]:
    """A structurally valid SMPL-X-format model with ``num_vertices`` vertices (for the fuzzer and tests that
    need a model file quickly; smplx itself needs >= 9,930 vertices)."""
    from posecore.bodies.smplx_joints import SMPLX_PARENTS

    rng = np.random.default_rng(1)
    v = num_vertices
    weights = rng.random((v, 55))
    kintree = np.array([[2**32 - 1, *SMPLX_PARENTS[1:]], list(range(55))], dtype=np.uint32)
    return {
        "v_template": rng.normal(size=(v, 3)),
        "f": np.array([[i, (i + 1) % v, (i + 2) % v] for i in range(v)], dtype=np.uint32),
        "J_regressor": np.full((55, v), 1.0 / v),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": kintree,
        "shapedirs": rng.normal(size=(v, 3, 20)) * 0.01,
        "posedirs": np.zeros((v, 3, 486)),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "lmk_faces_idx": np.arange(4, dtype=np.int64),
        "lmk_bary_coords": np.full((4, 3), 1.0 / 3),
    }


def _png(mode: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(2)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def seeds(reader: str) -> list[bytes]:
    """Valid files for ``reader`` that mutations start from."""
    arrays = _init_arrays()
    if reader in ("init-pkl", "pickle"):
        as_dict = {k: v for k, v in arrays.items()}
        return [pickle.dumps(as_dict, protocol=p) for p in (2, 4, 5)]
    if reader == "init-npz":
        posefit = {
            "joint_names": np.array(["pelvis", "left_hip"]),
            "rotations": np.zeros((2, 3), np.float32),
            "camera_K": np.array([[500.0, 0, 64], [0, 500, 64], [0, 0, 1]], np.float32),
            "image_size": np.array([128, 128], np.int32),
        }
        amass = {"poses": np.zeros((3, 165)), "trans": np.zeros((3, 3)), "mocap_framerate": np.array(30.0)}
        return [
            _npz_bytes(arrays, False),
            _npz_bytes(arrays, True),
            _npz_bytes(posefit, False),
            _npz_bytes(amass, True),
        ]
    if reader == "init-json":
        import json

        return [json.dumps({k: v.tolist() for k, v in arrays.items()}).encode()]
    if reader == "model":
        tiny = tiny_smplx_arrays()
        return [_npz_bytes(tiny, False), _npz_bytes(tiny, True)]
    if reader == "image":
        return [_png("RGB", (16, 12)), _png("RGBA", (8, 8))]
    if reader == "mask":
        return [_png("L", (16, 12))]
    if reader == "vposer":
        return _vposer_seeds()
    raise ValueError(reader)


def _vposer_seeds() -> list[bytes]:
    """Small VPoser checkpoints (hidden width 8): v1.0 state dicts in torch's legacy and zip formats, a v2.0
    Lightning-style checkpoint."""
    import torch

    from posecore.bodies.synthetic_vposer import _v1_state_dict, random_decoder

    out = []
    for legacy in (True, False):
        buffer = io.BytesIO()
        torch.save(_v1_state_dict(random_decoder("v1", hidden=8)), buffer, _use_new_zipfile_serialization=not legacy)
        out.append(buffer.getvalue())
    v2 = random_decoder("v2", hidden=8)
    state = {f"vp_model.decoder_net.{i}.{k}": getattr(v2, f"{n}_{k}")
             for i, n in ((0, "fc1"), (3, "fc2"), (5, "out")) for k in ("weight", "bias")}  # fmt: skip
    buffer = io.BytesIO()
    torch.save({"epoch": 8, "state_dict": state}, buffer)
    out.append(buffer.getvalue())
    return out


# ------------------------------------------------------------------------------------------ strategies
def _strategies(reader: str):
    """A hypothesis strategy of file contents for ``reader``."""
    from hypothesis import strategies as st

    base = seeds(reader)

    @st.composite
    def mutated(draw) -> bytes:
        data = bytearray(draw(st.sampled_from(base)))
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "bigint", "splice"]))
            pos = draw(st.integers(0, max(0, len(data) - 1)))
            if op == "flip" and data:
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "set" and data:
                data[pos] = draw(st.integers(0, 255))
            elif op == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            elif op == "delete":
                del data[pos : pos + draw(st.integers(1, 16))]
            elif op == "truncate":
                del data[pos:]
            elif op == "bigint":
                width = draw(st.sampled_from([2, 4, 8]))
                value = draw(st.sampled_from([2**31 - 1, 2**32 - 1, 2**63 - 1, 10**12, 2**29, 0xFFFF]))
                data[pos : pos + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
            elif op == "splice":
                other = draw(st.sampled_from(base))
                cut = draw(st.integers(0, len(other)))
                data[pos:] = other[cut:]
        return bytes(data)

    options = [mutated(), st.binary(max_size=512)]
    if reader == "init-pkl":
        leaves = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=True),
            st.text(max_size=8),
            st.binary(max_size=8),
        )
        values = st.recursive(
            leaves,
            lambda inner: st.one_of(
                st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=20,
        )
        options.append(
            st.builds(
                lambda d, p: pickle.dumps(d, protocol=p),
                st.dictionaries(st.sampled_from(sorted(_init_arrays())), values, max_size=4),
                st.integers(0, 5),
            )
        )
    if reader in ("init-npz", "model"):
        keys = sorted(tiny_smplx_arrays()) if reader == "model" else [*sorted(_init_arrays()), "poses", "rotations"]
        dtypes = st.sampled_from(["f4", "f8", "i4", "u4", "U3", "S2", "b1", "f2"])
        shapes = st.lists(st.integers(0, 6), max_size=3).map(tuple)
        arrays = st.dictionaries(
            st.sampled_from(keys),
            st.builds(lambda s, d: np.zeros(s, dtype=d), shapes, dtypes),
            max_size=6,
        )
        options.append(st.builds(_npz_bytes, arrays, st.booleans()))
    return st.one_of(options)


# ------------------------------------------------------------------------------------------- driver
def fuzz(reader: str, examples: int, seed: int, keep_dir: Path) -> tuple[int, int]:
    """Run ``examples`` hypothesis examples against ``reader``; raises on a finding.

    Returns:
        (inputs read, inputs that were read successfully); the rest ended in PoseFit's own error.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    ext = READERS[reader]
    count = ok = 0
    last = keep_dir / f"last-{reader}{ext}"
    target = keep_dir / f"input{ext}"

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(_strategies(reader))
    def check(data: bytes) -> None:
        nonlocal count, ok
        count += 1
        last.write_bytes(data)
        target.write_bytes(data)
        try:
            _read(reader, target)
            ok += 1
        except PoseFitError:
            pass

    check()
    return count, ok


def _peak_mb() -> float:
    """Peak resident memory of this process image, MB: ``VmHWM`` (reset by exec) where /proc has it. Not
    ``ru_maxrss``: Linux keeps that across exec, so a child started from a big test process (bpy, torch,
    mediapipe loaded) would report its parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--readers", default=",".join(READERS), help=f"comma list of {', '.join(READERS)}")
    parser.add_argument("--seed", type=int, default=0, help="first hypothesis seed (each batch adds 1)")
    parser.add_argument("--batch", type=int, default=40, help="examples per reader per round")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit for this process")
    parser.add_argument("--keep-dir", default=None, help="where the last input of each reader is kept")
    args = parser.parse_args(argv)
    readers = [r for r in args.readers.split(",") if r]
    unknown = sorted(set(readers) - set(READERS))
    if unknown or args.seconds <= 0 or args.batch <= 0 or args.memory_mb < 256:
        parser.error(f"bad arguments (unknown readers {unknown}?)")
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    keep = Path(args.keep_dir) if args.keep_dir else Path(tempfile.mkdtemp(prefix="posefit-fuzz-"))
    keep.mkdir(parents=True, exist_ok=True)
    for reader in readers:  # import every reader's modules before the clock starts
        warm = keep / f"warm{READERS[reader]}"
        warm.write_bytes(seeds(reader)[0])
        _read(reader, warm)
    runners: dict[str, Callable[[int], tuple[int, int]]] = {
        r: (lambda s, r=r: fuzz(r, args.batch, s, keep)) for r in readers
    }
    start = time.monotonic()
    totals = dict.fromkeys(readers, 0)
    accepted = dict.fromkeys(readers, 0)
    round_index = 0
    print(f"fuzz: readers {', '.join(readers)}; {args.seconds:g} s; memory limit {args.memory_mb} MB; inputs in {keep}")
    while time.monotonic() - start < args.seconds:
        for reader in readers:
            count, ok = runners[reader](args.seed + round_index)
            totals[reader] += count
            accepted[reader] += ok
            if time.monotonic() - start >= args.seconds:
                break
        round_index += 1
    elapsed = time.monotonic() - start
    counts = ", ".join(f"{r} {n} ({accepted[r]} read)" for r, n in totals.items())
    print(f"fuzz: {sum(totals.values())} inputs in {elapsed:.1f} s ({counts}); peak memory {_peak_mb():.0f} MB; "
          "no failures")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
