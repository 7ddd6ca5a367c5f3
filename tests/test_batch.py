"""``python -m posecore batch``: Ray workers give the same results as a serial run of the same chunks, a killed run
resumes with only the missing frames, a corrupt frame is reported and the others go on, and ``--address`` joins
a running Ray cluster. Tiny frames (64 px) and few iterations: the point is the bookkeeping, not accuracy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from posecore.bench.sequence import make_moving_sequence
from posecore.cli import main
from posecore.io.init_files import read_init_sequence

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 6
ray = pytest.importorskip("ray", reason="batch runs on Ray (pip install ray)")


@pytest.fixture(scope="module")
def sequence(anny, tmp_path_factory) -> Path:
    """frames/frame_000.png ... and init.npz (the faulty frame-0 pose with its camera)."""
    folder = tmp_path_factory.mktemp("sequence")
    seq = make_moving_sequence(anny, frames=FRAMES, size=64)
    seq.save(folder / "frames")
    seq.save_init(folder / "init.npz", anny)
    return folder


def batch_argv(sequence: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", "--frames", str(sequence / "frames"), "--init", str(sequence / "init.npz"), "--out", str(out),
            "--chunk", "3", "--iterations", "4", *extra]  # fmt: skip


def fit_arrays_of(out: Path, name: str) -> dict:
    with np.load(out / name / "fit.npz") as data:
        return {k: data[k] for k in data.files}


def names() -> list[str]:
    return [f"frame_{i:03d}" for i in range(FRAMES)]


def test_two_ray_workers_equal_a_serial_run(sequence, tmp_path, capsys) -> None:
    assert main(batch_argv(sequence, tmp_path / "serial", "--workers", "0", "--smooth", "1")) == 0
    assert main(batch_argv(sequence, tmp_path / "ray", "--workers", "2")) == 0
    capsys.readouterr()
    for name in names():
        serial, parallel = fit_arrays_of(tmp_path / "serial", name), fit_arrays_of(tmp_path / "ray", name)
        for key in ("rotations", "translation", "camera_R", "camera_t", "camera_angle"):
            np.testing.assert_array_equal(serial[key], parallel[key], err_msg=f"{name}: {key}")
    # Chunks of 3: each frame warm-starts from the one before, a chunk's first frame from --init.
    starts = {n: json.loads((tmp_path / "ray" / n / "result.json").read_text())["settings"]["warm_start_from"]
              for n in names()}  # fmt: skip
    assert starts == {"frame_000": None, "frame_001": "frame_000", "frame_002": "frame_001",
                      "frame_003": None, "frame_004": "frame_003", "frame_005": "frame_004"}  # fmt: skip
    init = np.load(sequence / "init.npz")["rotations"]
    assert not np.allclose(fit_arrays_of(tmp_path / "ray", "frame_000")["rotations"], init)  # it did fit
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["done"] == FRAMES and summary["failed"] == {} and summary["complete"]
    assert summary["ray"]["workers"] == 2
    # A complete run stacks its frames; --smooth also writes the filtered sequence. Both read back as inits.
    raw = read_init_sequence(tmp_path / "serial" / "sequence.npz")
    smooth = read_init_sequence(tmp_path / "serial" / "smoothed.npz")
    assert len(raw) == len(smooth) == FRAMES
    frame_2 = fit_arrays_of(tmp_path / "serial", "frame_002")["rotations"]
    assert np.allclose(raw[2].rotations_array(list(serial["joint_names"])), frame_2)
    assert not np.allclose(smooth[2].rotations_array(list(serial["joint_names"])), frame_2)
    assert not (tmp_path / "ray" / "smoothed.npz").exists()  # no --smooth, no smoothed file


def test_killed_run_resumes_with_only_the_missing_frames(sequence, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "posecore", *batch_argv(sequence, out, "--workers", "0", "--chunk", "6")]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while sum((out / n / "fit.npz").is_file() for n in names()) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "the batch ended before it was killed"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done_before = {n: (out / n / "fit.npz").stat().st_mtime_ns for n in names() if (out / n / "fit.npz").is_file()}
    assert 2 <= len(done_before) < FRAMES

    assert main(batch_argv(sequence, out, "--workers", "2", "--chunk", "6")) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fitted_this_run"] == [n for n in names() if n not in done_before]
    assert summary["skipped"] == len(done_before) and summary["done"] == FRAMES
    for name, mtime in done_before.items():
        assert (out / name / "fit.npz").stat().st_mtime_ns == mtime, f"{name} was redone"
    # The first frame redone warm-starts from the last frame done before the kill.
    first_new = summary["fitted_this_run"][0]
    record = json.loads((out / first_new / "result.json").read_text())
    assert record["settings"]["warm_start_from"] == names()[names().index(first_new) - 1]


def test_a_corrupt_frame_is_reported_and_the_others_go_on(sequence, tmp_path, capsys) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in names()[:4]:
        (frames / f"{name}.png").write_bytes((sequence / "frames" / f"{name}.png").read_bytes())
    (frames / "frame_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    argv = ["batch", "--frames", str(frames), "--init", str(sequence / "init.npz"), "--out", str(out),
            "--chunk", "4", "--iterations", "2", "--workers", "0"]  # fmt: skip
    code = main(argv)
    stdout = capsys.readouterr().out
    assert code == 1 and "frame_001" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["failed"]) == ["frame_001"]
    assert "frame_001.png" in summary["failed"]["frame_001"]
    assert summary["fitted_this_run"] == ["frame_000", "frame_002", "frame_003"]
    assert not (out / "frame_001").exists()
    # The frame after the bad one warm-starts from the last good one.
    record = json.loads((out / "frame_002" / "result.json").read_text())
    assert record["settings"]["warm_start_from"] == "frame_000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_address_joins_a_running_cluster(sequence, tmp_path, capsys) -> None:
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
         "--disable-usage-stats", "--object-store-memory=100000000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        os.environ["RAY_AUTH_MODE"] = "disabled"
        deadline = time.monotonic() + 120
        code = None
        while code != 0 and time.monotonic() < deadline:
            time.sleep(3)
            assert head.poll() is None, "ray start --head exited"
            code = main(batch_argv(sequence, tmp_path / "out", "--address", f"127.0.0.1:{port}", "--workers", "1"))
        assert code == 0
    finally:
        os.environ.pop("RAY_AUTH_MODE", None)
        head.send_signal(signal.SIGTERM)
        head.wait(timeout=60)
    capsys.readouterr()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["done"] == FRAMES
    assert summary["ray"]["address"].endswith(f":{port}")
    assert summary["ray"]["cpus"] == 1


def _descendants_running(marker: str) -> list[int]:
    """Pids of this process's descendants whose command line contains ``marker``."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != me:  # walk up the parents
                pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if pid == me:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray worker through /proc (Linux)")
def test_a_killed_worker_has_its_chunk_retried(sequence, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    result: dict = {}
    argv = batch_argv(sequence, out, "--workers", "1", "--chunk", str(FRAMES), "--iterations", "40")
    thread = threading.Thread(target=lambda: result.setdefault("code", main(argv)))
    thread.start()
    try:
        deadline = time.monotonic() + 240
        while not (out / "frame_000" / "fit.npz").is_file():
            assert thread.is_alive() and time.monotonic() < deadline, "no frame was fitted"
            time.sleep(0.05)
        workers = _descendants_running("ray::fit_chunk")
        assert len(workers) == 1, workers
        done_before = {n: (out / n / "fit.npz").stat().st_mtime_ns for n in names() if (out / n / "fit.npz").is_file()}
        assert len(done_before) < FRAMES
        os.kill(workers[0], signal.SIGKILL)
    finally:
        thread.join(timeout=600)
    capsys.readouterr()
    assert result.get("code") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == FRAMES and summary["failed"] == {}
    for name, mtime in done_before.items():  # the retried chunk skipped what its first try had finished
        assert (out / name / "fit.npz").stat().st_mtime_ns == mtime


def test_bad_batch_input_exits_2_with_one_line_and_writes_nothing(sequence, tmp_path, capsys, anny) -> None:
    from posecore.results import fit_arrays

    three = tmp_path / "three.npz"  # an init of 3 frames for a batch of 6: neither 1 nor 6
    arrays = fit_arrays(anny, anny.default_params(), make_moving_sequence(anny, frames=1, size=16).camera,
                        torch.zeros(3))  # fmt: skip
    np.savez(three, **{k: (np.stack([v] * 3) if k in ("rotations", "translation") else v) for k, v in arrays.items()})
    cases = {
        "missing frames": (["--frames", str(tmp_path / "nope"), "--init", str(sequence / "init.npz")], "nope"),
        "no init": (["--frames", str(sequence / "frames")], "--init"),
        "init frames": (["--frames", str(sequence / "frames"), "--init", str(three)], "three.npz"),
    }
    for name, (args, mention) in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        code = main(["batch", *args, "--out", str(out), "--workers", "0"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and mention in lines[0], (name, lines)
        assert not out.exists(), name


def test_ctrl_c_stops_with_one_line_a_summary_and_the_frames_done(sequence, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "posecore", *batch_argv(sequence, out, "--workers", "0", "--chunk", "6")]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while sum((out / n / "fit.npz").is_file() for n in names()) < 4:
        assert process.poll() is None and time.monotonic() < deadline, "the batch ended before it was interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted after" in lines[0] and "resumes" in lines[0], stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and 4 <= summary["done"] < FRAMES
    assert main(batch_argv(sequence, out, "--workers", "0", "--chunk", "6")) == 0  # the same command resumes
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["done"] == FRAMES


def test_small_jobs_run_serially_and_say_why() -> None:
    from posecore.batch.runner import serial_reason

    assert serial_reason(3, 2, 16, None).startswith("3 frame(s) to fit, fewer than 2 worker(s) x chunk 16")
    assert serial_reason(32, 2, 16, None) is None  # enough work for every worker
    assert serial_reason(3, 0, 16, None) is None  # serial anyway, nothing to say
    assert serial_reason(3, 2, 16, "auto") is None  # a cluster the user started is always used


def test_a_local_ray_starts_without_the_token_auth_warning(monkeypatch, capfd) -> None:
    """Only Ray's token-authentication logger is quietened, and only around the start; RAY_AUTH_MODE untouched."""
    import logging

    from posecore.batch.runner import RAY_AUTH_LOGGER, quiet_local_ray_auth

    logger = logging.getLogger(RAY_AUTH_LOGGER)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with quiet_local_ray_auth():
        assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
        assert "RAY_AUTH_MODE" not in os.environ
    assert logger.isEnabledFor(logging.WARNING)  # restored
