"""The command line under hostile and careless input: one line, exit 2, nothing written, nothing of the user's
deleted; --out checked before any work; SIGINT / SIGTERM say exactly what state the output is in."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch

from posecore import cli
from posecore.io.atomic import (
    OUTPUT_MARKER,
    OutputFolderExistsError,
    OutputNotAFolderError,
    atomic_output_dir,
    committed_output_dirs,
)
from posecore.io.images import save_image

REPO = Path(__file__).resolve().parents[1]


def png_claiming(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """photo.png (48 x 32), mask.png (its person mask), init.json (a neutral pose), wide.png, black.png."""
    folder = tmp_path_factory.mktemp("inputs")
    photo = torch.rand(32, 48, 3)
    save_image(folder / "photo.png", photo)
    mask = torch.zeros(32, 48)
    mask[8:24, 16:32] = 1.0
    save_image(folder / "mask.png", mask)
    save_image(folder / "wide.png", torch.ones(32, 96))
    save_image(folder / "black.png", torch.zeros(32, 48))
    (folder / "init.json").write_text('{"transl": [0, 0, 3]}')
    (folder / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    return folder


def run_main(argv: list[str], capsys, monkeypatch) -> tuple[int, list[str], bool]:
    """main(argv) -> (exit code, stderr lines, whether the command itself started)."""
    started = []
    real_fit, real_demo = cli.cmd_fit, cli.cmd_demo
    monkeypatch.setattr(cli, "cmd_fit", lambda args: started.append("fit") or real_fit(args))
    monkeypatch.setattr(cli, "cmd_demo", lambda args: started.append("demo") or real_demo(args))
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines(), bool(started)


def fit_args(inputs: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", "--image", str(inputs / "photo.png"), "--init", str(inputs / "init.json"), "--iterations", "1",
            "--out", str(out), *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "mention"),
    [
        (["--threads", "-1"], "--threads: must be at least 1"),
        (["--size", "-5"], "--size: must be at least 8"),
        (["--iterations", "lots"], "--iterations: expected a whole number"),
        (["--prior-weight", "nan"], "--prior-weight: must be a finite number"),
        (["--mask", "{inputs}/bomb.png"], "too large to load safely"),
        (["--mask", "{inputs}/wide.png"], "another aspect ratio"),
        (["--mask", "{inputs}/black.png"], "empty mask"),
        (["--model", "smplx:{inputs}:alien"], "unknown SMPL-X gender 'alien'"),
        (["--image", "{inputs}/bomb.png"], "bomb.png"),
        (["--image", "{inputs}"], "is a directory"),
        (["--init", "/dev/zero"], "character device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(inputs, tmp_path, capsys, monkeypatch, extra, mention):
    out = tmp_path / "out"
    argv = [*fit_args(inputs, out), *(e.format(inputs=inputs) for e in extra)]
    code, lines, _ = run_main(argv, capsys, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("posefit: error:") and mention in lines[0], lines
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_huge_values_are_echoed_short(inputs, tmp_path, capsys, monkeypatch) -> None:
    init = tmp_path / "init.json"
    init.write_text('{"' + "k" * 1_000_000 + '": 1}')
    code, lines, _ = run_main([*fit_args(inputs, tmp_path / "out"), "--init", str(init)], capsys, monkeypatch)
    assert code == 2 and len(lines) == 1 and len(lines[0]) <= 1100 and "characters left out" in lines[0]


def test_unknown_part_joint_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    argv = ["demo", "--size", "32", "--iterations", "1", "--part", "joint:nonexistent", "--out", str(out)]
    code, lines, _ = run_main(argv, capsys, monkeypatch)
    lines = [line for line in lines if "Warp CUDA warning" not in line]
    assert code == 2 and len(lines) == 1 and "has no joint 'nonexistent'" in lines[0], lines
    assert not out.exists()


def _out_is_file(tmp: Path) -> Path:
    (tmp / "out").write_text("a file")
    return tmp / "out"


def _dangling_link(tmp: Path) -> Path:
    (tmp / "out").symlink_to(tmp / "missing")
    return tmp / "out"


def _under_a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file" / "out"


def _foreign_folder(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "holiday.jpg").write_bytes(b"precious")
    return tmp / "out"


@pytest.mark.parametrize(
    ("make", "mention"),
    [
        (_out_is_file, "exists and is not a folder"),
        (_dangling_link, "which does not exist"),
        (_under_a_file, "is not a folder"),
        (_foreign_folder, "not written by PoseFit"),
    ],
)
def test_unusable_out_is_refused_before_any_work(inputs, tmp_path, capsys, monkeypatch, make, mention) -> None:
    out = make(tmp_path)
    before = {p: (p.lstat().st_mtime_ns, p.is_symlink()) for p in tmp_path.rglob("*")}
    code, lines, started = run_main(fit_args(inputs, out), capsys, monkeypatch)
    assert code == 2 and len(lines) == 1 and mention in lines[0], lines
    assert not started  # refused before the images, the model or the fit were touched
    assert {p: (p.lstat().st_mtime_ns, p.is_symlink()) for p in tmp_path.rglob("*")} == before


@pytest.mark.skipif(not Path("/proc/self").is_dir() or not Path("/sys").is_dir(), reason="needs Linux /proc and /sys")
@pytest.mark.parametrize("where", ["/proc", "/sys"])
def test_out_on_a_file_system_nobody_can_write_is_refused_before_any_work(inputs, capsys, monkeypatch, where) -> None:
    """/proc and /sys refuse new folders even to root (CI runs as root, for whom permission bits never say no)."""
    out = Path(where) / "posefit-test-out" / "run1"
    code, lines, started = run_main(fit_args(inputs, out), capsys, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"posefit: error: {where}: folder is not writable"), lines
    assert "cannot be created" in lines[0], lines
    assert not started and not out.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permissions cannot be tested as root")
def test_unwritable_out_is_refused_before_any_work(inputs, tmp_path, capsys, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, lines, started = run_main(fit_args(inputs, locked / "out"), capsys, monkeypatch)
    finally:
        locked.chmod(0o700)
    assert code == 2 and "not writable" in lines[0] and not started


# ------------------------------------------------------------------------------------------- output folders
def _write(final: Path, **files: str) -> None:
    with atomic_output_dir(final) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)


def test_rerun_keeps_the_users_files_and_replaces_only_posefits(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, **{"result.json": "1", "old.png": "1"})
    (out / "photo.jpg").write_bytes(b"the photo being fitted")
    _write(out, **{"result.json": "2", "fit.npz": "2"})
    assert (out / "photo.jpg").read_bytes() == b"the photo being fitted"
    assert (out / "result.json").read_text() == "2" and (out / "fit.npz").read_text() == "2"
    assert not (out / "old.png").exists()  # PoseFit's own stale output is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no hidden .tmp / .old folders
    (out / "figure.png").write_text("the user's own file, named like an output")
    with pytest.raises(OutputFolderExistsError, match=r"figure\.png"):
        _write(out, **{"fit.npz": "3", "figure.png": "3"})
    assert (out / "figure.png").read_text() == "the user's own file, named like an output"
    assert (out / "fit.npz").read_text() == "2"  # refused before anything moved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    _write(link, **{"result.json": "1"})
    _write(link, **{"result.json": "2"})
    assert link.is_symlink() and (target / "result.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    with pytest.raises(OutputNotAFolderError):
        _write(tmp_path / "real" / "result.json", x="1")


def test_an_interrupt_during_the_commit_is_held_until_it_is_complete(tmp_path: Path, monkeypatch) -> None:
    from posecore.io import atomic

    out = tmp_path / "out"
    _write(out, **{"a.txt": "old", "b.txt": "old"})
    real_replace = os.replace
    calls = []

    def replace_then_interrupt(src, dst):
        calls.append(dst)
        real_replace(src, dst)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C between two renames

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("new")
        (tmp / "b.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new" and (out / "b.txt").read_text() == "new"
    assert committed_output_dirs()[-1] == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert OUTPUT_MARKER in os.listdir(out)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signals_end_with_one_line_and_leave_nothing(tmp_path: Path, sig: int, code: int, name: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "posecore",
            "demo",
            "--size",
            "32",
            "--preset",
            "paper",
            "--iterations",
            "100000",
            "--out",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)
    assert proc.poll() is None, "the command ended before the signal (it should still be fitting)"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    assert proc.returncode == code, stderr[-3000:]
    # Usually the fit is running (main() adds "(OUT is not created)"); on a loaded machine torch may still be
    # importing, which __main__ reports the same way.
    assert len(lines) == 1 and lines[0].startswith(f"posefit: {name}: interrupted; nothing was written"), stderr
    assert lines[0].endswith(f"({out} is not created)") or lines[0].endswith("nothing was written"), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_result_files_load_back(tmp_path: Path) -> None:
    """The manifest does not disturb readers of a result folder."""
    _write(tmp_path / "out", **{"result.json": "{}"})
    manifest = (tmp_path / "out" / OUTPUT_MARKER).read_text()
    assert '"result.json"' in manifest
    assert sorted(os.listdir(tmp_path / "out")) == [OUTPUT_MARKER, "result.json"]


def test_png_chunk_claiming_a_gigabyte_is_not_allocated(tmp_path: Path) -> None:
    """Found by the fuzzer: PIL reads a chunk of the length the file declares; from disk that allocated it."""
    photo = tmp_path / "photo.png"
    save_image(photo, torch.rand(12, 16, 3))
    data = bytearray(photo.read_bytes())
    idat = data.find(b"IDAT")
    struct.pack_into(">I", data, idat - 4, 0x52000257)  # the image data chunk claims 1.3 GB
    photo.write_bytes(bytes(data))
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1024 * 2**20, 1024 * 2**20))\n"
        "from posecore.fuzz import read_one\n"
        f"sys.exit(read_one('image', {str(photo)!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
