"""Frame sources: an image folder, a glob and a movie give frames in order, with stable names and the right
pixels; bad sources raise a clear error naming the path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from posecore.errors import InputFileError
from posecore.io.frame_sources import Frame, ImageFilesSource, MovieSource, SelectedFrames, open_frame_source
from posecore.io.images import save_image

av = pytest.importorskip("av", reason="PyAV (pip install av) reads movies")


def grey(value: float, size: int = 32) -> torch.Tensor:
    return torch.full((size, size, 3), value)


def write_movie(path, values: list[int], size: int = 32) -> None:
    """An MPEG-4 movie whose frame t is flat grey values[t] (0-255); a keyframe every 4 frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 4
        for v in values:
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), v, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(params=["av", "cv2"])
def movie_backend(request, monkeypatch) -> str:
    """Each movie test runs with PyAV and with OpenCV's FFmpeg (what the Blender extension bundles)."""
    if request.param == "cv2":
        pytest.importorskip("cv2", reason="OpenCV (mediapipe's dependency) reads movies without PyAV")
    monkeypatch.setenv("POSEFIT_MOVIE_BACKEND", request.param)
    return request.param


def test_folder_frames_are_sorted_and_named_by_stem(tmp_path) -> None:
    for name, value in (("b.png", 0.5), ("a.png", 0.25), ("c.jpg", 0.75)):
        save_image(tmp_path / name, grey(value))
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_frame_source(tmp_path)
    assert isinstance(source, ImageFilesSource)
    assert [f.name for f in source.frames] == ["a", "b", "c"]
    assert [f.index for f in source.frames] == [0, 1, 2]
    assert float(source.load(source.frames[1]).rgb.mean()) == pytest.approx(0.5, abs=0.01)


def test_shared_stems_keep_their_extension_and_glob_selects(tmp_path) -> None:
    save_image(tmp_path / "x.png", grey(0.2))
    save_image(tmp_path / "x.jpg", grey(0.8))
    save_image(tmp_path / "y.png", grey(0.4))
    assert [f.name for f in open_frame_source(tmp_path).frames] == ["x.jpg", "x.png", "y"]
    assert [f.name for f in open_frame_source(str(tmp_path / "*.png")).frames] == ["x", "y"]


def test_movie_frames_in_display_order_random_access_and_pickled(tmp_path, movie_backend) -> None:
    """Frame levels 50 apart; lossy MPEG-4 keeps each within a few levels."""
    values = [10, 60, 110, 160, 210, 30, 80, 130, 180]
    write_movie(tmp_path / "clip.mp4", values)
    source = open_frame_source(tmp_path / "clip.mp4")
    assert isinstance(source, MovieSource) and source.backend == movie_backend
    assert [f.name for f in source.frames] == [f"frame_{i:06d}" for i in range(len(values))]

    def level(frame_index: int, src=source) -> float:
        return 255 * float(src.load(src.frames[frame_index]).rgb.mean())

    assert [round(level(i)) for i in range(len(values))] == pytest.approx(values, abs=8)  # in order
    assert level(6) == pytest.approx(80, abs=8)  # backwards: seeks to the keyframe before it
    assert level(2) == pytest.approx(110, abs=8)
    copy = pickle.loads(pickle.dumps(source))  # as a Ray worker receives it
    assert level(7, copy) == pytest.approx(130, abs=8)
    source.close()
    copy.close()


def test_selected_frames_load_their_source_frames_under_the_given_names(tmp_path, movie_backend) -> None:
    """A Blender frame range hands frames 5 and 2 of a movie over as frame_0001 and frame_0002."""
    values = [10, 60, 110, 160, 210, 30]
    write_movie(tmp_path / "clip.mp4", values)
    chosen = SelectedFrames(open_frame_source(tmp_path / "clip.mp4"), [Frame(5, "frame_0001"), Frame(2, "frame_0002")])
    copy = pickle.loads(pickle.dumps(chosen))  # as a Ray worker receives it
    for source in (chosen, copy):
        levels = [255 * float(source.load(f).rgb.mean()) for f in source.frames]
        assert levels == pytest.approx([30, 110], abs=8)
        source.close()
    assert chosen.description == str(tmp_path / "clip.mp4")
    with pytest.raises(InputFileError, match="share the name 'a'"):
        SelectedFrames(chosen.source, [Frame(0, "a"), Frame(1, "a")])
    with pytest.raises(InputFileError, match="has 6 frames; frame index 6 does not exist"):
        SelectedFrames(chosen.source, [Frame(6, "b")])


def test_opencv_and_pyav_decode_the_same_pixels(tmp_path, monkeypatch) -> None:
    """A textured, moving movie: every frame OpenCV's FFmpeg gives equals PyAV's within 2 levels (both are
    FFmpeg; only their YUV-to-RGB conversions may round differently), in the same order."""
    pytest.importorskip("cv2")
    size, count = 48, 7
    ramp = np.add.outer(np.arange(size), np.arange(size)).astype(np.float64)
    path = tmp_path / "texture.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv444p"
        for t in range(count):
            image = np.stack([(ramp * 2 + 30 * t) % 256, np.roll(ramp, t * 5, 1) * 2 % 256, ramp[::-1] * 2 % 256], -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    decoded = {}
    for backend in ("av", "cv2"):
        monkeypatch.setenv("POSEFIT_MOVIE_BACKEND", backend)
        source = open_frame_source(path)
        decoded[backend] = [source.load(f).rgb for f in [*source.frames[3:], *source.frames[:3]]]  # jump back too
        source.close()
    assert len(decoded["av"]) == len(decoded["cv2"]) == count
    for a, b in zip(decoded["av"], decoded["cv2"], strict=True):
        assert a.shape == b.shape == (size, size, 3)
        assert float((a - b).abs().max()) <= 2.0 / 255
    assert float((decoded["cv2"][0] - decoded["cv2"][1]).abs().max()) > 0.1  # the frames do differ


@pytest.mark.parametrize("kind", ["missing", "empty folder", "glob matching nothing", "not a movie"])
def test_bad_sources_name_the_path(tmp_path, kind) -> None:
    spec = {
        "missing": tmp_path / "nope",
        "empty folder": tmp_path,
        "glob matching nothing": str(tmp_path / "*.png"),
        "not a movie": tmp_path / "clip.mp4",
    }[kind]
    (tmp_path / "clip.mp4").write_bytes(b"this is not a movie")
    if kind == "empty folder":
        (tmp_path / "clip.mp4").unlink()
    with pytest.raises(InputFileError) as info:
        open_frame_source(spec)
    assert str(tmp_path) in str(info.value)
