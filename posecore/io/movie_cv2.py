"""Movies through OpenCV's FFmpeg (``cv2.VideoCapture``): what :mod:`posecore.io.frame_sources` uses when PyAV is
not installed. The Blender extension bundles OpenCV anyway (MediaPipe imports it), so it leaves PyAV's 36 MB wheel
out and decodes movie targets with the FFmpeg inside OpenCV's wheel.

Frames are read in display order, sequentially: listing a movie decodes it once to count its frames (OpenCV's
frame-count property is an estimate for many containers), and loading frame ``i`` reads forward from the last
frame read (or from the start when ``i`` lies before it), so reading frames in order decodes each once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posecore.errors import InputFileError


def _capture(path: Path):
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputFileError(path, f"reading movies needs PyAV (pip install av==18.1.0) or OpenCV ({exc})") from None
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise InputFileError(path, "is not a movie FFmpeg (through OpenCV) can read")
    return capture


def count_frames(path: Path) -> int:
    """The number of video frames (decoded once, to the end).

    Raises:
        InputFileError: not a readable movie, or no video frames.
    """
    capture = _capture(path)
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise InputFileError(path, "has no video frames")
    return count


class Cv2MovieReader:
    """Sequential reader of one movie: :meth:`read` returns frame ``index`` (0-based) as (H, W, 3) uint8 RGB."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._capture = None
        self._next = 0  # index of the frame the next read() gives

    def read(self, index: int) -> np.ndarray:
        """Frame ``index``; InputFileError when the movie ends before it or it cannot be decoded."""
        import cv2

        if self._capture is None or index < self._next:
            self.close()
            self._capture, self._next = _capture(self.path), 0
        while self._next < index:
            if not self._capture.grab():
                break
            self._next += 1
        ok, bgr = self._capture.read() if self._next == index else (False, None)
        if not ok or bgr is None:
            self.close()
            raise InputFileError(self.path, f"frame {index} cannot be decoded")
        self._next += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Release the decoder (the next read reopens it)."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
