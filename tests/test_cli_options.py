"""Command-line options that had no test: ``--crop`` with a valid box, every ``--part`` name and ``joint:NAME``,
and ``--keypoints detect`` beside ``--init``. Each checks what the option promises, on small real fits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posecore.cli import main
from posecore.demo import make_demo_case
from posecore.fitting.parts import PART_NAMES, part_joints
from posecore.io.images import load_image, save_image
from posecore.results import fit_arrays

SIZE = 96


@pytest.fixture(scope="module")
def inputs(anny, tmp_path_factory):
    """photo.png (the demo's hidden pose), init.npz (its faulty start) and spoiled.png: the photo with its right
    half replaced by noise."""
    folder = tmp_path_factory.mktemp("options")
    case = make_demo_case(anny, size=SIZE)
    save_image(folder / "photo.png", case.target)
    np.savez(folder / "init.npz", **fit_arrays(anny, case.initial, case.camera, torch.zeros(3)))
    spoiled = case.target.clone()
    spoiled[:, SIZE // 2 :] = torch.rand(SIZE, SIZE - SIZE // 2, 3, generator=torch.Generator().manual_seed(5))
    save_image(folder / "spoiled.png", spoiled)
    return folder


def _fit(inputs, out, *extra: str, image: str = "photo.png", iterations: int = 4) -> dict:
    argv = ["fit", "--image", str(inputs / image), "--init", str(inputs / "init.npz"), "--size", str(SIZE),
            "--iterations", str(iterations), "--keypoints", "none", "--out", str(out), *extra]  # fmt: skip
    assert main(argv) == 0
    with np.load(out / "fit.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return {"arrays": arrays, "record": json.loads((out / "result.json").read_text())}


def test_crop_counts_only_the_box(inputs, tmp_path, capsys):
    """With --crop over the left half, noise painted over the right half changes nothing (bit for bit); without
    the crop the same noise changes the fit."""
    box = f"0,0,{SIZE // 2},{SIZE}"
    clean = _fit(inputs, tmp_path / "clean", "--crop", box)
    spoiled = _fit(inputs, tmp_path / "spoiled", "--crop", box, image="spoiled.png")
    capsys.readouterr()
    assert clean["record"]["settings"]["crop"] == [0, 0, SIZE // 2, SIZE]
    init = np.load(inputs / "init.npz")["rotations"]
    assert not np.array_equal(clean["arrays"]["rotations"], init)  # it did fit
    for key in ("rotations", "translation"):
        np.testing.assert_array_equal(clean["arrays"][key], spoiled["arrays"][key], err_msg=key)
    uncropped = _fit(inputs, tmp_path / "uncropped", image="spoiled.png")
    assert not np.array_equal(uncropped["arrays"]["rotations"], spoiled["arrays"]["rotations"])


@pytest.mark.parametrize("part", [*PART_NAMES, "joint:lowerarm01.L"])
def test_every_part_moves_only_its_joints(inputs, anny, tmp_path, capsys, part):
    """``--part``: the joints of the part (for ``joint:NAME`` the joint and its descendants) are optimised; every
    other joint, the translation and the shape stay bit for bit as in the --init file."""
    result = _fit(inputs, tmp_path / "out", "--part", part, iterations=3)
    capsys.readouterr()
    assert result["record"]["settings"]["part"] == part
    inside = set(part_joints(anny, part))
    assert inside and len(inside) < anny.num_joints
    if part.startswith("joint:"):
        start = anny.joint_index(part.removeprefix("joint:"))
        assert start in inside and anny.joint_index("wrist.L") in inside and anny.joint_index("head") not in inside
    init = np.load(inputs / "init.npz")
    rotations = result["arrays"]["rotations"]
    outside = [j for j in range(anny.num_joints) if j not in inside]
    np.testing.assert_array_equal(rotations[outside], init["rotations"][outside])
    np.testing.assert_array_equal(result["arrays"]["translation"], init["translation"])
    np.testing.assert_array_equal(result["arrays"]["shape"], init["shape"])
    # The part was optimised: its iterates changed the loss (the result is the best state, which after a few
    # iterations may still be the start).
    losses = [h["loss"] for h in result["record"]["history"]]
    assert len(losses) == 4 and len(set(losses)) > 1, losses


def test_keypoints_detect_beside_an_init_file(inputs, tmp_path, capsys):
    """``--keypoints detect`` with ``--init``: the person is detected for the keypoint term only; the fit starts
    from the file (its first state is the file's pose) and the keypoint term is on; ``none`` turns it off."""
    pytest.importorskip("mediapipe", reason="detection needs mediapipe==0.10.14 (scripts/setup.sh installs it)")
    argv = ["fit", "--image", str(inputs / "photo.png"), "--init", str(inputs / "init.npz"), "--size", str(SIZE),
            "--iterations", "2", "--keypoints", "detect", "--out", str(tmp_path / "kp")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    record = json.loads((tmp_path / "kp" / "result.json").read_text())
    assert record["settings"]["keypoints"] is True
    assert record["settings"]["init"].endswith("init.npz")
    assert record["history"][0]["keypoint_loss"] > 0
    without = _fit(inputs, tmp_path / "none", iterations=2)["record"]
    assert without["settings"]["keypoints"] is False
    assert not without["history"][0].get("keypoint_loss")
    assert load_image(inputs / "photo.png").shape[:2] == (SIZE, SIZE)
