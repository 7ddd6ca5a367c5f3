"""Images, masks, alpha, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posecore.errors import InputFileError, ParameterError
from posecore.io.atomic import (
    OUTPUT_MARKER,
    atomic_output_dir,
    atomic_write_bytes,
    atomic_write_text,
    save_npz_atomic,
)
from posecore.io.images import image_size, load_image, load_image_alpha, load_mask, same_aspect, save_image


def gradient_rgb(width: int = 8, height: int = 6) -> np.ndarray:
    """(H, W, 3) uint8 with a distinct value per pixel and channel."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 30, y * 40, (x + y) * 10], axis=2).astype(np.uint8)


# ------------------------------------------------------------------------------------------- images
def test_load_image_values_and_layout(tmp_path: Path) -> None:
    rgb = gradient_rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.dtype == torch.float32 and tuple(img.shape) == (6, 8, 3)
    torch.testing.assert_close(img, torch.from_numpy(rgb).float() / 255.0)  # no gamma conversion


def test_load_grayscale_and_16_bit(tmp_path: Path) -> None:
    gray = (np.arange(12).reshape(3, 4) * 20).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert tuple(img.shape) == (3, 4, 3)
    torch.testing.assert_close(img[:, :, 1], torch.from_numpy(gray).float() / 255.0)
    deep = (np.arange(12).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    img16 = load_image(tmp_path / "d.png")
    torch.testing.assert_close(img16[:, :, 0], torch.from_numpy(deep.astype(np.float32)) / 65535.0)


def test_load_image_resize_antialiased(tmp_path: Path) -> None:
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)  # 1-pixel checkerboard
    Image.fromarray(np.stack([checker] * 3, axis=2)).save(tmp_path / "c.png")
    small = load_image(tmp_path / "c.png", size=(16, 8))
    assert tuple(small.shape) == (8, 16, 3)
    # antialiasing averages the checkerboard to grey instead of sampling black or white
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)
    same = load_image(tmp_path / "c.png", size=(64, 64))
    assert torch.equal(same, load_image(tmp_path / "c.png"))
    with pytest.raises(ParameterError):
        load_image(tmp_path / "c.png", size=(0, 10))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = gradient_rgb(8, 6)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "phone.png", exif=exif)
    img = load_image(tmp_path / "phone.png")
    assert tuple(img.shape) == (8, 6, 3)
    expected = torch.from_numpy(np.rot90(rgb, k=-1).copy()).float() / 255.0  # clockwise
    torch.testing.assert_close(img, expected)
    mask = np.zeros((6, 8), np.uint8)
    mask[0, 0] = 255  # top-left of the stored image -> top-right once displayed
    Image.fromarray(mask).save(tmp_path / "mask.png", exif=exif)
    m = load_mask(tmp_path / "mask.png")
    assert tuple(m.shape) == (8, 6) and m[0, 5] == 1.0 and m.sum() == 1.0


def test_image_size_is_the_displayed_size(tmp_path: Path) -> None:
    """The header's size, turned by the EXIF orientation like load_image turns the pixels."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(gradient_rgb(8, 6)).save(tmp_path / "phone.png", exif=exif)
    Image.fromarray(gradient_rgb(8, 6)).save(tmp_path / "plain.png")
    assert image_size(tmp_path / "phone.png") == (6, 8) == tuple(load_image(tmp_path / "phone.png").shape[1::-1])
    assert image_size(tmp_path / "plain.png") == (8, 6)
    with pytest.raises(InputFileError, match="file not found"):
        image_size(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputFileError, match=r"bad\.png"):
        image_size(tmp_path / "bad.png")


def test_same_aspect_allows_rounding_only() -> None:
    assert same_aspect((1200, 800), (600, 400)) and same_aspect((1001, 750), (512, 384))
    assert same_aspect((1920, 1080), (1280, 720)) and same_aspect((333, 500), (512, 769))
    assert not same_aspect((1200, 800), (512, 512))
    assert not same_aspect((1080, 1920), (1920, 1080))
    assert not same_aspect((1000, 750), (512, 380))  # 4 px off at this size: a visible stretch


def test_missing_and_corrupt_images(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found"):
        load_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputFileError, match=r"bad\.png"):
        load_image(tmp_path / "bad.png")
    Image.fromarray(gradient_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(InputFileError, match=r"cut\.png"):
        load_mask(tmp_path / "cut.png")


# ---------------------------------------------------------------------------------------- masks, alpha
def test_load_mask_gray_binary_and_labels(tmp_path: Path) -> None:
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 2:4] = 255
    mask[0, 0] = 128
    Image.fromarray(mask).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png")
    assert m.dtype == torch.float32 and tuple(m.shape) == (4, 5)
    assert m[1, 2] == 1.0 and m[3, 4] == 0.0 and m[0, 0] == pytest.approx(128 / 255)
    Image.fromarray(mask > 0).save(tmp_path / "b.png")  # mode "1"
    b = load_mask(tmp_path / "b.png")
    assert b[1, 2] == 1.0 and b[0, 0] == 1.0 and b[3, 4] == 0.0
    Image.fromarray((mask > 200).astype(np.uint8)).save(tmp_path / "labels.png")  # 0/1 values
    labels = load_mask(tmp_path / "labels.png")
    assert labels.max() == 1.0 and labels.sum() == 4.0


def test_mask_resize(tmp_path: Path) -> None:
    mask = np.zeros((16, 8), np.uint8)  # same aspect as the target size: masks are never stretched
    mask[:, :4] = 255
    Image.fromarray(mask).save(tmp_path / "half.png")
    m = load_mask(tmp_path / "half.png", size=(2, 4))
    assert tuple(m.shape) == (4, 2)
    # antialiased bilinear (triangle filter): soft but mass-preserving, symmetric edges
    torch.testing.assert_close(m[:, 0] + m[:, 1], torch.ones(4))
    assert (m[:, 0] > 0.8).all() and (m[:, 1] < 0.2).all()
    torch.testing.assert_close(m[:, 0], m[0, 0].expand(4))


def test_alpha_channel(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[1:3, 1:4, 3] = 255
    rgba[0, 0, 3] = 51
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    alpha = load_image_alpha(tmp_path / "cut.png")
    assert alpha is not None and tuple(alpha.shape) == (4, 6)
    assert alpha[1, 1] == 1.0 and alpha[3, 5] == 0.0 and alpha[0, 0] == pytest.approx(0.2)
    torch.testing.assert_close(load_mask(tmp_path / "cut.png", from_alpha=True), alpha)
    rgb = load_image(tmp_path / "cut.png")
    assert tuple(rgb.shape) == (4, 6, 3)
    torch.testing.assert_close(rgb, torch.full((4, 6, 3), 200 / 255))  # alpha dropped, not composited
    Image.fromarray(gradient_rgb()).save(tmp_path / "opaque.png")
    assert load_image_alpha(tmp_path / "opaque.png") is None
    with pytest.raises(InputFileError, match="no alpha channel"):
        load_mask(tmp_path / "opaque.png", from_alpha=True)


# ------------------------------------------------------------------------------------------ saving
def test_save_image_round_trip(tmp_path: Path) -> None:
    rgb = torch.from_numpy(gradient_rgb()).float() / 255.0
    save_image(tmp_path / "out" / "x.png", rgb)
    torch.testing.assert_close(load_image(tmp_path / "out" / "x.png"), rgb)
    save_image(tmp_path / "g.png", torch.linspace(-1.0, 2.0, 12).reshape(3, 4))  # clamped
    g = load_image(tmp_path / "g.png")[:, :, 0]
    assert g.min() == 0.0 and g.max() == 1.0
    rgba = np.zeros((3, 4, 4), np.float32)
    rgba[..., 3] = 0.6
    save_image(tmp_path / "a.png", rgba)
    alpha = load_image_alpha(tmp_path / "a.png")
    assert alpha is not None and alpha[0, 0] == pytest.approx(153 / 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "g.png", "out"]  # no temp files left


def test_save_image_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="NaN"):
        save_image(tmp_path / "n.png", torch.full((2, 2, 3), float("nan")))
    with pytest.raises(ParameterError, match=r"\(C, H, W\)"):
        save_image(tmp_path / "c.png", torch.zeros(3, 10, 12))
    with pytest.raises(ParameterError, match="cannot save"):
        save_image(tmp_path / "x.gif", torch.zeros(2, 2, 3))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- atomic
def test_atomic_write_bytes_and_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_save_npz_atomic(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    save_npz_atomic(path, rotations=torch.ones(2, 3), model=np.array("smplx"), size=np.array([640, 480]))
    with np.load(path, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["rotations"], np.ones((2, 3), np.float32))
        assert str(data["model"]) == "smplx"
        np.testing.assert_array_equal(data["size"], [640, 480])
    with pytest.raises(ParameterError, match="dtype object"):
        save_npz_atomic(tmp_path / "bad.npz", x=np.array([{"a": 1}], dtype=object))
    assert [p.name for p in tmp_path.iterdir()] == ["fit.npz"]


def test_atomic_output_dir_success_and_replace(tmp_path: Path) -> None:
    final = tmp_path / "results" / "photo"
    with atomic_output_dir(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        assert not final.exists()
        (tmp / "a.txt").write_text("first")
        (tmp / "stale.txt").write_text("only in the first run")
    assert (final / "a.txt").read_text() == "first"
    assert (final / OUTPUT_MARKER).is_file()
    with atomic_output_dir(final) as tmp:
        (tmp / "a.txt").write_text("second")
        assert (final / "a.txt").read_text() == "first"  # old content intact until success
    assert (final / "a.txt").read_text() == "second"
    assert not (final / "stale.txt").exists()  # replaced, not merged
    assert sorted(p.name for p in final.parent.iterdir()) == ["photo"]


def test_atomic_output_dir_exception_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"), atomic_output_dir(final) as tmp:
        (tmp / "half.npz").write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # an existing result survives a failed rerun untouched
    with atomic_output_dir(final) as tmp:
        (tmp / "fit.npz").write_bytes(b"good")
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(final) as tmp:
        (tmp / "fit.npz").write_bytes(b"half")
        raise KeyboardInterrupt
    assert (final / "fit.npz").read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_output_dir_refuses_foreign_folder(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "me.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not written by PoseFit"), atomic_output_dir(photos):
        pass
    assert (photos / "me.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_output_dir(empty) as tmp:
        (tmp / "x").write_text("1")
    assert (empty / "x").read_text() == "1"
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError), atomic_output_dir(tmp_path / "file"):
        pass


def test_mask_of_another_aspect_or_empty_is_refused(tmp_path: Path) -> None:
    mask = np.zeros((300, 400), np.uint8)
    mask[100:200, 150:250] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert tuple(load_mask(tmp_path / "m.png", size=(10, 8)).shape) == (8, 10)  # 7.5 rounded: same aspect
    with pytest.raises(InputFileError, match="another aspect ratio"):
        load_mask(tmp_path / "m.png", size=(10, 10))
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(InputFileError, match="empty mask"):
        load_mask(tmp_path / "black.png")
