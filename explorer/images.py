"""Untrusted images in, model-ready pixels out: the one place an upload is decoded.

``load_image`` opens a file path, raw bytes, a numpy array or a PIL image and returns a fully decoded
PIL image in one of the modes ``L``, ``LA``, ``RGB`` or ``RGBA`` (8 bits per channel). On the way it:

- opens only the allow-listed formats in ``ALLOWED_FORMATS`` (PNG, JPEG/MPO, GIF, BMP, WEBP, TIFF and
  the netpbm family PBM/PGM/PPM). Nothing that needs an outside program (EPS runs Ghostscript), no
  vector formats (an SVG is refused), nothing exotic whose decoder sees little use;
- refuses files over ``MAX_BYTES`` before reading them, and images over ``MAX_PIXELS`` (16 megapixels,
  a fifth of Pillow's default ``Image.MAX_IMAGE_PIXELS``) before decoding them: ``Image.open`` only
  reads the header, so the declared size is checked while the pixel data is still compressed.
  Pillow's process-wide ``MAX_IMAGE_PIXELS`` is left untouched;
- decodes inside ``try`` so a truncated or corrupt file is refused, not half-loaded;
- applies the EXIF orientation (phone photos), keeps only the first frame of an animation or a
  multi-page TIFF, and maps every colour mode (1, L, LA, P/PA with or without transparency, RGB,
  RGBA, RGBa, RGBX, CMYK, YCbCr, HSV, LAB, I;16*, I, F) to 8 bits per channel, with 16-bit images
  scaled (65535 -> 255), not clipped.

``prepare_image`` turns that image into a ``(channels, image_size, image_size)`` uint8 array for a
model: transparency is composited onto **black** (the datasets here are light strokes on a dark
background, MNIST-style, so a transparent background means "no ink"), colour becomes grey by the
ITU-R 601-2 luma transform when the model has one channel, and the image is scaled so its shorter side
is ``image_size`` (Lanczos filter) and centre-cropped.

Every failure raises ``ImageInputError`` (a ValueError) whose message says what was wrong and what to
do; no other exception escapes either function. Only Pillow and numpy are used here.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Pillow format ids (``Image.format``) that may be opened. PPM covers PBM, PGM and PPM files;
# MPO is how Pillow reports the multi-picture JPEGs many phone cameras write.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "GIF", "BMP", "WEBP", "TIFF", "PPM")
MAX_BYTES = 20 * 1024 * 1024  # 20 MiB on disk
MAX_PIXELS = 16 * 1024 * 1024  # 16 megapixels (e.g. 4096 x 4096) decoded
MAX_IMAGE_SIZE = 1024  # largest image_size prepare_image will produce
_OUT_MODES = ("L", "LA", "RGB", "RGBA")
_HINT = "upload a PNG, JPEG, GIF, BMP, WEBP, TIFF or PPM/PGM image"


class ImageInputError(ValueError):
    """An image cannot be used as model input; the message says what was wrong and what to do."""


def load_image(
    source: str | os.PathLike | bytes | np.ndarray | Image.Image,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` into a PIL image in mode L, LA, RGB or RGBA, safely.

    ``source`` is a file path, the bytes of an image file, an array ``(H, W)`` or ``(H, W, 1|3|4)``
    (uint8 0..255, uint16 0..65535, bool, or float in [0, 1]), or a PIL image. Raises ImageInputError.
    """
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels)
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "the uploaded data"
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source), max_bytes)
        name = Path(source).name
    else:
        raise ImageInputError(
            f"cannot read an image from a {type(source).__name__}; pass a file path, bytes, a numpy array"
            " or a PIL image"
        )
    if len(data) > max_bytes:
        raise ImageInputError(
            f"{name} is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB."
            " Upload a smaller image"
        )
    if not data:
        raise ImageInputError(f"{name} is empty (0 bytes); {_HINT}")
    return _decode(data, name, max_pixels)


def prepare_image(img: Image.Image, image_size: int, channels: int) -> np.ndarray:
    """``img`` as a model input: uint8 ``(channels, image_size, image_size)``.

    Alpha is composited onto black; shorter side scaled to ``image_size`` (Lanczos), then centre-cropped.
    ``channels`` is 1 (grey, ITU-R 601-2 luma) or 3 (RGB; grey images are repeated). Raises ImageInputError.
    """
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) \
            or not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise ImageInputError(f"image_size must be an integer in 1..{MAX_IMAGE_SIZE}, got {image_size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ImageInputError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if not isinstance(img, Image.Image):
        raise ImageInputError(f"prepare_image needs a PIL image (see load_image), got {type(img).__name__}")
    img = _from_pil(img, MAX_PIXELS)
    # Composite onto black (colour * alpha) at full resolution, before resampling, so the colour of fully
    # transparent pixels never bleeds into the edges. Pillow does it in uint8, in C: no wide temporaries.
    if img.mode in ("LA", "RGBA"):
        colour = img.convert("L" if img.mode == "LA" else "RGB")
        img = Image.composite(colour, Image.new(colour.mode, img.size, 0), img.getchannel("A"))
    if channels == 1 and img.mode == "RGB":
        img = img.convert("L")  # ITU-R 601-2 luma
    out = np.asarray(_fit(img, image_size))
    if out.ndim == 2:
        out = out[None]
        if channels == 3:
            out = np.repeat(out, 3, axis=0)
    else:
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out, dtype=np.uint8)


# ---- reading -----------------------------------------------------------------------------------------

def _read_file(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes`` + 1 bytes of a regular file (never a FIFO, device or directory)."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise ImageInputError(f"cannot read {path.name}: {getattr(e, 'strerror', None) or e}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ImageInputError(f"{path.name} is not a regular file; {_HINT}")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise ImageInputError(
                f"{path.name} is {st.st_size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB."
                " Upload a smaller image"
            )
        try:
            return f.read(max_bytes + 1)
        except OSError as e:
            raise ImageInputError(f"cannot read {path.name}: {getattr(e, 'strerror', None) or e}") from e


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    Image.init()  # registers every plugin once; open() with ``formats`` only looks among registered ones
    try:
        # Reads the header only. MPO has no opener of its own: the JPEG opener returns MPO files.
        img = Image.open(io.BytesIO(data), formats=[f for f in ALLOWED_FORMATS if f != "MPO"])
    except Image.DecompressionBombError as e:  # Pillow's own, much higher, limit: far too large for ours
        raise ImageInputError(
            f"{name} declares an image far larger than the {max_pixels / 2**20:.0f}-megapixel limit;"
            " downscale it before uploading"
        ) from e
    except Image.UnidentifiedImageError as e:
        raise ImageInputError(f"{name} is not an image in an allowed format; {_HINT}") from e
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many types for broken headers
        raise ImageInputError(f"{name} has a broken image header ({e}); {_HINT}") from e
    if img.format not in ALLOWED_FORMATS:
        raise ImageInputError(f"{name} is a {img.format} image, which is not accepted; {_HINT}")
    _check_size(img.size, name, max_pixels)  # before a single pixel is decoded
    return _from_pil(img, max_pixels, name)


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageInputError(f"{name} has no pixels ({w}x{h}); {_HINT}")
    if w * h > max_pixels:
        raise ImageInputError(
            f"{name} is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {max_pixels / 2**20:.0f} megapixels"
            " (4096x4096). Downscale it before uploading"
        )


def _from_pil(img: Image.Image, max_pixels: int, name: str = "the image") -> Image.Image:
    """First frame, decoded, EXIF-rotated, in L/LA/RGB/RGBA. Idempotent on such an image."""
    _check_size(img.size, name, max_pixels)
    if img.mode in _OUT_MODES and "transparency" not in img.info and not _has_orientation(img):
        try:
            img.load()
        except Exception as e:  # noqa: BLE001 - any decoder failure means a truncated or corrupt file
            raise ImageInputError(f"{name} is truncated or corrupt ({e}); re-export it and upload again") from e
        return img
    try:
        img.load()  # the first frame only: animations and multi-page files are never seeked
        img = ImageOps.exif_transpose(img) or img
        return _to_8bit(img, name)
    except ImageInputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure means a truncated or corrupt file
        raise ImageInputError(f"{name} is truncated or corrupt ({e}); re-export it and upload again") from e


def _has_orientation(img: Image.Image) -> bool:
    try:
        return img.getexif().get(0x0112, 1) != 1  # EXIF Orientation tag
    except Exception:  # noqa: BLE001 - a malformed EXIF block is treated as "no rotation"
        return False


def _to_8bit(img: Image.Image, name: str) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageInputError(
                f"{name} is a 32-bit integer image with values outside 0..65535; save it as 8- or 16-bit"
            )
        return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), "L")
    if mode == "F":
        with np.errstate(invalid="ignore"):  # signalling NaNs warn when widened; they are refused below
            a = np.asarray(img, dtype=np.float64)
        return Image.fromarray(_float_to_uint8(a, name), "L")
    if "transparency" in img.info or mode in ("PA", "RGBa", "La"):
        # Palette or colour-key transparency becomes a real alpha channel.
        grey = mode in ("1", "L", "La") or (mode in ("P", "PA") and _palette_is_grey(img))
        return img.convert("LA" if grey else "RGBA")
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        return img.convert("L" if _palette_is_grey(img) else "RGB")
    if mode in _OUT_MODES:
        return img
    if mode in ("RGBX", "CMYK", "YCbCr", "HSV", "LAB"):
        return img.convert("RGB")
    raise ImageInputError(f"{name} uses colour mode {mode!r}, which is not supported; {_HINT} in RGB or greyscale")


def _palette_is_grey(img: Image.Image) -> bool:
    pal = img.getpalette("RGB") or []
    rgb = np.asarray(pal, dtype=np.uint8).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def _float_to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    """Floats in [0, 1] -> 0..255; float images (mode F) may also be in [0, 255]."""
    if not np.isfinite(a).all():
        raise ImageInputError(f"{name} contains NaN or infinite values; pixels must be finite")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0 and hi <= 1:
        return np.rint(a * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255:
        return np.rint(a).astype(np.uint8)
    raise ImageInputError(f"{name} has float values in [{lo:g}, {hi:g}]; expected [0, 1] (or [0, 255])")


def _from_array(a: np.ndarray, max_pixels: int) -> Image.Image:
    name = f"the array of shape {a.shape}"
    if a.ndim == 3 and a.shape[-1] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
        raise ImageInputError(
            f"{name} looks channels-first; pass (H, W) or (H, W, C) with C in 1, 3, 4 (use a.transpose(1, 2, 0))"
        )
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3, 4))):
        raise ImageInputError(f"{name} is not an image; pass (H, W) or (H, W, C) with C in 1, 3, 4")
    _check_size((a.shape[1], a.shape[0]), name, max_pixels)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageInputError(f"{name} contains NaN or infinite values; pixels must be finite")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise ImageInputError(f"{name} has float values in [{lo:g}, {hi:g}]; float pixels must be in [0, 1]")
        a = np.rint(a * 255).astype(np.uint8)
    else:
        raise ImageInputError(f"{name} has dtype {a.dtype}; use uint8 (0..255), uint16, bool or float in [0, 1]")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    mode = {2: "L"}.get(a.ndim) or {3: "RGB", 4: "RGBA"}[a.shape[-1]]
    return Image.fromarray(np.ascontiguousarray(a), mode)


# ---- geometry ----------------------------------------------------------------------------------------

def _fit(img: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is ``size`` and centre-crop to ``size`` x ``size``."""
    w, h = img.size
    scale = size / min(w, h)
    # Crop the centre square in source coordinates first (cheap), then resample once.
    cw, ch = min(w, size / scale), min(h, size / scale)
    left, top = (w - cw) / 2, (h - ch) / 2
    return img.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + cw, top + ch),
                      reducing_gap=3.0)
