"""Load photos and masks as float tensors, and save images atomically.

Colour: pixel values are returned as stored, divided by the format's maximum (255 for 8-bit, 65535
for 16-bit), i.e. sRGB-encoded values in [0, 1]. **No gamma conversion** to linear light is done;
callers that compare against a renderer's linear output must convert themselves.

Orientation: the EXIF orientation tag (set by phone cameras) is applied, so the image is the right
way up as every viewer shows it; masks get the same treatment, so a photo and its mask stay aligned.

Sizes are ``(width, height)`` in pixels, like PIL; tensors are ``(H, W, ...)``.
Resizing uses bilinear interpolation with antialiasing (``torch.nn.functional.interpolate``), on
float values, so downscaling averages pixels instead of aliasing.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.nn import functional

from posecore.errors import InputFileError, ParameterError
from posecore.io.atomic import atomic_write_bytes
from posecore.io.paths import existing_file, read_regular_file

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_EXIF_ORIENTATION = 0x0112


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ParameterError(f"image size must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0 or (width, height) != tuple(size):
        raise ParameterError(f"image size must be two positive integers (width, height), got {size!r}")
    return width, height


MAX_IMAGE_PIXELS = 50_000_000
"""Largest photo or mask read (width x height): 50 megapixels, more than phone cameras take; a
100,000 x 100,000 PNG (a decompression bomb of a few kilobytes) is refused before decoding."""


def _check_pixels(p: Path, img: Image.Image) -> None:
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise InputFileError(
            p,
            f"is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), more than PoseFit reads "
            f"({MAX_IMAGE_PIXELS / 1e6:.0f} megapixels): scale it down first",
        )


MAX_IMAGE_FILE_BYTES = 256 * 2**20


def _file_in_memory(path: str | os.PathLike[str]) -> tuple[Path, io.BytesIO]:
    """The image file's bytes (a regular file of at most MAX_IMAGE_FILE_BYTES) as a BytesIO: PIL's decoders
    read chunk lengths from the file and ask for that many bytes; from a BytesIO such a read returns what
    exists instead of allocating what a corrupt header claims (a PNG chunk "of 1.3 GB")."""
    p = existing_file(path, "an image file")
    return p, io.BytesIO(read_regular_file(p, "an image file", MAX_IMAGE_FILE_BYTES))


_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError, ZeroDivisionError)
"""What PIL raises on corrupt or truncated image data."""


@contextlib.contextmanager
def _opened_image(path: str | os.PathLike[str], problem: str) -> Iterator[tuple[Path, Image.Image]]:
    """The checked file opened by PIL from memory (pixel cap applied); any failure while it is open, including
    in the caller's block, becomes one InputFileError naming the file (``problem`` says what failed)."""
    p, data = _file_in_memory(path)
    try:
        with Image.open(data) as img:
            _check_pixels(p, img)
            yield p, img
    except InputFileError:
        raise
    except UnidentifiedImageError:
        raise InputFileError(p, "is not an image PIL can read (unknown format or corrupt)") from None
    except Image.DecompressionBombError as exc:
        raise InputFileError(p, f"is too large to load safely: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise InputFileError(p, f"{problem}: {exc}") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of an image as viewers show it and :func:`load_image` returns it (EXIF orientation
    applied: a phone photo stored 4000 x 3000 and turned a quarter is 3000 x 4000), from its header only.

    Raises:
        InputFileError: missing, a folder or not a regular file, not an image, or beyond MAX_IMAGE_PIXELS.
    """
    with _opened_image(path, "cannot be read as an image (corrupt?)") as (_p, img):
        width, height = img.size
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        return (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # 5-8: a quarter turn


def image_exif_tag(path: str | os.PathLike[str], tag: int, ifd: int | None = None) -> object | None:
    """One EXIF tag of an image (from ``ifd`` when given, e.g. 0x8769 the Exif IFD, else the base IFD), or None.

    Read like :func:`image_size`: the file is checked (regular, size cap) and parsed from memory, headers only.
    A photo whose metadata cannot be read simply has no such tag.
    """
    try:
        with _opened_image(path, "has unreadable metadata") as (_p, img):
            exif = img.getexif()
            return (exif.get_ifd(ifd) if ifd is not None else exif).get(tag)
    except (InputFileError, KeyError):
        return None


def _open(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image, EXIF orientation applied; InputFileError on any failure."""
    with _opened_image(path, "cannot be decoded (corrupt or truncated image?)") as (_p, img):
        img.load()  # decode now: truncated files fail here, not later
        oriented = ImageOps.exif_transpose(img)
        return oriented if oriented is not img else img.copy()


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when two (width, height) sizes have the same shape, up to rounding: scaling ``a`` to ``b``'s width
    gives ``b``'s height within one pixel (and the other way round)."""
    (wa, ha), (wb, hb) = a, b
    return abs(ha * wb / wa - hb) <= 1.0 and abs(hb * wa / wb - ha) <= 1.0


def _channel_to_float(img: Image.Image) -> np.ndarray:
    """One PIL band (any mode) -> (H, W) float32 in [0, 1]."""
    if img.mode == "1":
        return np.asarray(img, dtype=np.float32)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.float32) / 65535.0
    if img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr / scale, 0.0, 1.0).astype(np.float32)
    if img.mode == "F":
        return np.clip(np.nan_to_num(np.asarray(img, dtype=np.float32)), 0.0, 1.0)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def _rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]; alpha is dropped (not composited)."""
    if img.mode in ("1", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = _channel_to_float(img)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _alpha_band(img: Image.Image) -> Image.Image | None:
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return img.getchannel("A")
    if img.mode == "P" and "transparency" in img.info:
        return img.convert("RGBA").getchannel("A")
    if img.mode in ("RGB", "L") and "transparency" in img.info:
        return img.convert("RGBA" if img.mode == "RGB" else "LA").getchannel("A")
    return None


def _resize(t: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """(H, W, C) -> (height, width, C) bilinear with antialiasing; unchanged if already that size."""
    if size is None:
        return t
    width, height = size
    if t.shape[0] == height and t.shape[1] == width:
        return t
    x = t.permute(2, 0, 1).unsqueeze(0)
    y = functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return y.squeeze(0).permute(1, 2, 0).clamp(0.0, 1.0).contiguous()


def load_image(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> torch.Tensor:
    """Load a photo as RGB.

    Args:
        path: any image PIL reads (JPEG, PNG, WebP, TIFF, ...). Grayscale is repeated to 3 channels;
            an alpha channel is dropped (see :func:`load_image_alpha`); 16-bit values are scaled by
            1/65535.
        size: ``(width, height)`` to resize to (antialiased bilinear), or ``None`` for the file's size.

    Returns:
        (H, W, 3) float32 tensor, sRGB-encoded values in [0, 1] (no gamma conversion).

    Raises:
        InputFileError: missing, unreadable or corrupt file.
        ParameterError: ``size`` is not two positive integers.
    """
    size = _check_size(size)
    img = _open(path)
    return _resize(torch.from_numpy(_rgb_array(img).copy()), size)


def load_mask(
    path: str | os.PathLike[str], size: tuple[int, int] | None = None, from_alpha: bool = False
) -> torch.Tensor:
    """Load a silhouette mask.

    Args:
        path: a grayscale or binary image (white = person), or an RGB image (converted to luminance),
            or, with ``from_alpha=True``, an image whose alpha channel is the mask (e.g. a cut-out
            RGBA PNG). An 8-bit mask holding only the values 0 and 1 (a label image) is read as 0/1,
            not as 0 and 1/255.
        size: ``(width, height)`` to resize to (antialiased bilinear, so edges become soft), or None.
        from_alpha: take the alpha channel instead of the colour values.

    Returns:
        (H, W) float32 tensor in [0, 1].

    Raises:
        InputFileError: missing/corrupt file, or ``from_alpha`` on an image without alpha.
    """
    size = _check_size(size)
    img = _open(path)
    if from_alpha:
        band = _alpha_band(img)
        if band is None:
            raise InputFileError(path, f"has no alpha channel (mode {img.mode}) to use as a mask")
        mask = _channel_to_float(band)
    else:
        if img.mode in ("LA", "La"):
            img = img.getchannel("L")
        mask = _channel_to_float(img)
        raw_max = mask.max(initial=0.0)
        if img.mode in ("L", "P") and 0 < raw_max <= 1.0 / 255.0 + 1e-6:
            mask = mask * 255.0  # a 0/1 label image
    if not mask.any():
        raise InputFileError(path, "is an empty mask (all black): it marks no person pixels")
    if size is not None:
        _check_same_aspect(path, img.size, size)
    return _resize(torch.from_numpy(mask.copy())[:, :, None], size)[:, :, 0]


def _check_same_aspect(path: str | os.PathLike[str], stored: tuple[int, int], size: tuple[int, int]) -> None:
    """Refuse resizing a mask to another aspect ratio (it would be stretched out of register with the
    photo). ``size`` was rounded to whole pixels and so was the mask: aspects within those roundings
    (half a pixel of ``size``, one pixel of the mask) and 1% more are the same aspect."""
    width, height = stored
    low = (size[1] - 0.5) / (size[0] + 0.5) * 0.99
    high = (size[1] + 0.5) / max(size[0] - 0.5, 0.5) * 1.01
    aspect_low, aspect_high = (height - 1) / (width + 1), (height + 1) / max(width - 1, 1)
    if aspect_high < low or aspect_low > high:
        raise InputFileError(
            path,
            f"is {width} x {height} pixels, another aspect ratio than the photo's {size[0]} x {size[1]}: "
            "the mask would be stretched; make the mask from this photo",
        )


def load_image_alpha(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> torch.Tensor | None:
    """The alpha channel of an image, or ``None`` when it has none.

    Args:
        path: the image (RGBA / LA PNG, palette PNG with transparency, WebP, ...).
        size: ``(width, height)`` to resize to, or ``None``.

    Returns:
        (H, W) float32 tensor in [0, 1] (1 = opaque), or ``None``.
    """
    size = _check_size(size)
    img = _open(path)
    band = _alpha_band(img)
    if band is None:
        return None
    return _resize(torch.from_numpy(_channel_to_float(band).copy())[:, :, None], size)[:, :, 0]


def _to_uint8(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        raise ParameterError(
            f"image has shape {arr.shape}, which looks like (C, H, W); expected (H, W, 3), (H, W, 4) or "
            f"(H, W): use tensor.permute(1, 2, 0)"
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ParameterError(f"image has shape {arr.shape}, expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ParameterError(f"image has shape {arr.shape}: it is empty")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "biuf":
        raise ParameterError(f"image has dtype {arr.dtype}, expected floats in [0, 1] or uint8")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ParameterError("image contains NaN or infinite values")
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(path: str | os.PathLike[str], image: torch.Tensor | np.ndarray) -> None:
    """Save an image atomically (a reader never sees a half-written file).

    Args:
        path: target file; ``.png`` (lossless, the default for any other suffix is an error) or
            ``.jpg``/``.jpeg`` (quality 95, alpha not allowed).
        image: (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) gray; float values in [0, 1] (clamped,
            rounded to 8 bits, written as-is: no gamma conversion) or uint8.

    Raises:
        ParameterError: bad shape/dtype, NaN values, unsupported suffix.
    """
    p = Path(path)
    fmt = _SAVE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ParameterError(
            f"{p}: cannot save images as {p.suffix or '(no extension)'!r}: use {', '.join(_SAVE_FORMATS)}"
        )
    arr = _to_uint8(image)
    if fmt == "JPEG" and arr.ndim == 3 and arr.shape[2] == 4:
        raise ParameterError(f"{p}: JPEG cannot store alpha; save RGBA images as .png")
    img = Image.fromarray(arr)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        img.save(buffer, format=fmt, quality=95)
    else:
        img.save(buffer, format=fmt)
    atomic_write_bytes(p, buffer.getvalue())
