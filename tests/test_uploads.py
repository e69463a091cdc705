"""Hostile and odd uploads: every one becomes a valid model input or raises ImageInputError.

The corpus is generated here (no binary fixtures in the repo): broken, lying, oversized, exotic and
perfectly fine files, each written to disk and passed to ``load_image`` both as a path and as bytes.
A hypothesis fuzz then throws random bytes, bit-flipped real images and random arrays at the same
pipeline. "Valid" means a uint8 array of shape (channels, image_size, image_size).
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from explorer.images import MAX_PIXELS, ImageInputError, load_image, prepare_image

SIZE, CHANNELS = 28, 1
OK, ERROR, EITHER = "ok", "error", "either"
# Pillow warns about what it tolerates (bomb-sized headers, corrupt EXIF/TIFF tags); we only care
# about what gets through.
pytestmark = [pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")]


# ---- building files by hand ---------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc & 0xFFFFFFFF)


def _png(width: int, height: int, raw: bytes, *, bit_depth: int = 8, colour: int = 0,
         extra: list[bytes] = (), ihdr_crc: int | None = None) -> bytes:
    """A PNG assembled chunk by chunk, so it can declare anything (size, depth) its data does not back."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr, ihdr_crc) + b"".join(extra)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 40, h: int = 30) -> np.ndarray:
    """(h, w, 3) uint8, different in every corner, so rotations and crops are visible."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], -1).astype(np.uint8)


def _digit() -> Image.Image:
    """A white stroke on black, like the training data."""
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255
    return Image.fromarray(a)


def valid_png() -> bytes:
    return _save(Image.fromarray(_gradient()), "PNG")


def truncated_png() -> bytes:
    data = _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    return data[: len(data) // 2]


def bad_crc_png() -> bytes:
    return _png(4, 4, b"\x00" * 4 * 5, ihdr_crc=0xDEADBEEF)


def bad_crc_idat_png() -> bytes:
    data = bytearray(valid_png())
    i = data.index(b"IDAT")
    n = struct.unpack(">I", data[i - 4:i])[0]
    data[i + 4 + n] ^= 0xFF  # first byte of the IDAT CRC
    return bytes(data)


def huge_declared_png() -> bytes:
    """IHDR says 20000 x 20000 (400 megapixels); the file itself is a few dozen bytes."""
    return _png(20000, 20000, b"\x00" * 64)


def over_limit_png() -> bytes:
    """8192 x 8192 grey zeros: 64 MiB decoded, ~65 KB of zlib on disk. Just past our limit, well under Pillow's."""
    row = b"\x00" * (8192 + 1)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(8192)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", 8192, 8192, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def zero_size_png() -> bytes:
    return _png(0, 0, b"")


def one_pixel_png() -> bytes:
    return _save(Image.new("L", (1, 1), 200), "PNG")


def sixteen_bit_png() -> bytes:
    return _save(Image.fromarray(np.full((8, 8), 65535, np.uint16)), "PNG")


def sixteen_bit_rgb_png() -> bytes:
    rgb = (np.full((8, 8, 3), 32768, np.uint16)).astype(">u2").tobytes()
    raw = b"".join(b"\x00" + rgb[r * 8 * 6:(r + 1) * 8 * 6] for r in range(8))
    return _png(8, 8, raw, bit_depth=16, colour=2)


def cmyk_jpeg() -> bytes:
    return _save(Image.new("CMYK", (32, 32), (0, 0, 0, 0)), "JPEG")


def animated_gif() -> bytes:
    frames = [Image.new("L", (16, 16), v) for v in (255, 0, 0)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def animated_webp() -> bytes:
    frames = [Image.new("RGB", (16, 16), (255, 255, 255)), Image.new("RGB", (16, 16), (0, 0, 0))]
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50, lossless=True)


def svg() -> bytes:
    return (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<image href="file:///etc/passwd"/></svg>')


def text_named_png() -> bytes:
    return b"this is not an image, just some text in a file called .png\n" * 10


def random_bytes() -> bytes:
    return np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes()


def png_magic_then_garbage() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + random_bytes()


def huge_text_chunk_png() -> bytes:
    """A zTXt chunk that inflates to 64 MiB: a text-chunk decompression bomb."""
    bomb = zlib.compress(b"A" * (64 * 2**20), 9)
    ztxt = _chunk(b"zTXt", b"Comment\x00\x00" + bomb)
    return _png(4, 4, b"\x00" * 4 * 5, extra=[ztxt])


def big_plain_text_chunk_png() -> bytes:
    """Three 1 MiB tEXt chunks: bulky metadata that decodes nothing."""
    return _png(4, 4, b"\x00" * 4 * 5, extra=[_chunk(b"tEXt", b"k%d\x00" % i + b"x" * 2**20) for i in range(3)])


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return _save(Image.fromarray(_gradient(40, 20)), "JPEG", exif=exif.tobytes(), quality=95)


def exif_bad_orientation_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 99
    return _save(Image.fromarray(_gradient()), "JPEG", exif=exif.tobytes())


def palette_transparency_png() -> bytes:
    im = Image.new("P", (8, 8), 0)
    im.putpalette([255, 255, 255, 255, 0, 0])  # index 0 white (transparent), 1 red
    im.putpixel((4, 4), 1)
    return _save(im, "PNG", transparency=0)


def rgb_colour_key_png() -> bytes:
    return _save(Image.new("RGB", (8, 8), (255, 255, 255)), "PNG", transparency=(255, 255, 255))


def transparent_white_rgba_png() -> bytes:
    return _save(Image.new("RGBA", (8, 8), (255, 255, 255, 0)), "PNG")


def i16_tiff() -> bytes:
    return _save(Image.fromarray(np.full((8, 8), 65535, np.uint16)), "TIFF")


def float_tiff() -> bytes:
    return _save(Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)), "TIFF")


def nan_float_tiff() -> bytes:
    return _save(Image.fromarray(np.full((8, 8), np.nan, np.float32)), "TIFF")


def int32_tiff_out_of_range() -> bytes:
    return _save(Image.fromarray(np.full((8, 8), -5, np.int32)), "TIFF")


def multipage_tiff() -> bytes:
    pages = [Image.new("L", (8, 8), 255), Image.new("L", (64, 64), 0)]
    return _save(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def huge_declared_tiff() -> bytes:
    data = bytearray(_save(Image.new("L", (8, 8)), "TIFF"))
    # Patch ImageWidth (256) and ImageLength (257) entries of the first IFD to 60000.
    ifd = struct.unpack("<I", data[4:8])[0]
    n = struct.unpack("<H", data[ifd:ifd + 2])[0]
    for k in range(n):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack("<HH", data[e:e + 4])
        if tag in (256, 257):
            data[e + 2:e + 4] = struct.pack("<H", 4)  # LONG
            data[e + 8:e + 12] = struct.pack("<I", 60000)
    return bytes(data)


def bilevel_png() -> bytes:
    return _save(_digit().convert("1"), "PNG")


def la_png() -> bytes:
    return _save(Image.new("LA", (8, 8), (255, 128)), "PNG")


def cmyk_tiff() -> bytes:
    return _save(Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "TIFF")


def truncated_jpeg() -> bytes:
    data = _save(Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    return data[: len(data) * 2 // 3]


def huge_declared_gif() -> bytes:
    data = bytearray(_save(Image.new("L", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen 65535 x 65535
    return bytes(data)


def huge_declared_bmp() -> bytes:
    data = bytearray(_save(Image.new("RGB", (4, 4)), "BMP"))
    data[18:26] = struct.pack("<ii", 30000, -30000)  # top-down, 900 megapixels declared
    return bytes(data)


def pgm_16bit() -> bytes:
    return b"P5\n4 4\n65535\n" + b"\xff\xff" * 16


def ppm_truncated() -> bytes:
    return b"P6\n100 100\n255\n" + b"\x00" * 300


def eps_file() -> bytes:
    """EPS is decoded by running Ghostscript on it: not in the allow-list, so never opened."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
            b"(/tmp/latent-explorer-eps-ran) (w) file closefile\nshowpage\n")


def ico_file() -> bytes:
    return _save(Image.new("RGB", (16, 16)), "ICO")


def psd_like() -> bytes:
    return b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 64, 64, 8, 3) + b"\x00" * 64


def extreme_aspect_png() -> bytes:
    return _save(Image.new("L", (16000, 1), 255), "PNG")


def empty_file() -> bytes:
    return b""


# name -> (file suffix, builder, expected outcome)
CORPUS: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "valid_png": (".png", valid_png, OK),
    "truncated_png": (".png", truncated_png, ERROR),
    "bad_crc_ihdr_png": (".png", bad_crc_png, ERROR),
    "bad_crc_idat_png": (".png", bad_crc_idat_png, EITHER),
    "png_20000x20000": (".png", huge_declared_png, ERROR),
    "png_8192x8192_bomb": (".png", over_limit_png, ERROR),
    "png_0x0": (".png", zero_size_png, ERROR),
    "png_1x1": (".png", one_pixel_png, OK),
    "png_16bit_grey": (".png", sixteen_bit_png, OK),
    "png_16bit_rgb": (".png", sixteen_bit_rgb_png, OK),
    "cmyk_jpeg": (".jpg", cmyk_jpeg, OK),
    "animated_gif": (".gif", animated_gif, OK),
    "animated_webp": (".webp", animated_webp, OK),
    "svg": (".svg", svg, ERROR),
    "svg_named_png": (".png", svg, ERROR),
    "text_named_png": (".png", text_named_png, ERROR),
    "random_bytes": (".png", random_bytes, ERROR),
    "png_magic_then_garbage": (".png", png_magic_then_garbage, ERROR),
    "ztxt_bomb_png": (".png", huge_text_chunk_png, ERROR),
    "big_text_chunks_png": (".png", big_plain_text_chunk_png, OK),
    "exif_rotated_jpeg": (".jpg", exif_rotated_jpeg, OK),
    "exif_bad_orientation_jpeg": (".jpg", exif_bad_orientation_jpeg, OK),
    "palette_transparency_png": (".png", palette_transparency_png, OK),
    "rgb_colour_key_png": (".png", rgb_colour_key_png, OK),
    "transparent_white_rgba_png": (".png", transparent_white_rgba_png, OK),
    "i16_tiff": (".tif", i16_tiff, OK),
    "float_tiff": (".tif", float_tiff, OK),
    "nan_float_tiff": (".tif", nan_float_tiff, ERROR),
    "int32_negative_tiff": (".tif", int32_tiff_out_of_range, ERROR),
    "multipage_tiff": (".tif", multipage_tiff, OK),
    "tiff_60000x60000": (".tif", huge_declared_tiff, ERROR),
    "bilevel_png": (".png", bilevel_png, OK),
    "la_png": (".png", la_png, OK),
    "cmyk_tiff": (".tif", cmyk_tiff, OK),
    "truncated_jpeg": (".jpg", truncated_jpeg, ERROR),
    "gif_65535x65535": (".gif", huge_declared_gif, ERROR),
    "bmp_30000x30000": (".bmp", huge_declared_bmp, ERROR),
    "pgm_16bit": (".pgm", pgm_16bit, OK),
    "ppm_truncated": (".ppm", ppm_truncated, ERROR),
    "eps_with_payload": (".eps", eps_file, ERROR),
    "ico_not_allowed": (".ico", ico_file, ERROR),
    "psd_header": (".psd", psd_like, ERROR),
    "png_16000x1": (".png", extreme_aspect_png, OK),
    "empty_file": (".png", empty_file, ERROR),
}


def _check(source, image_size: int = SIZE, channels: int = CHANNELS) -> np.ndarray | ImageInputError:
    """The property: a valid model input, or our own error with a message. Anything else fails the test."""
    try:
        out = prepare_image(load_image(source), image_size, channels)
    except ImageInputError as e:
        assert str(e), "ImageInputError without a message"
        return e
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.shape == (channels, image_size, image_size)
    return out


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_file(name, tmp_path):
    suffix, build, expected = CORPUS[name]
    data = build()
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(data)
    results = [_check(path), _check(data), _check(str(path), 32, 3)]
    kinds = {isinstance(r, ImageInputError) for r in results}
    assert len(kinds) == 1, f"{name}: path and bytes disagree: {results}"
    if expected == OK:
        assert not isinstance(results[0], ImageInputError), f"{name} should load: {results[0]}"
    elif expected == ERROR:
        assert isinstance(results[0], ImageInputError), f"{name} should be refused"
    assert not os.path.exists("/tmp/latent-explorer-eps-ran")


# ---- what the odd-but-fine files must turn into ----------------------------------------------------------

def _grey(data: bytes, size: int = 8) -> np.ndarray:
    return prepare_image(load_image(data), size, 1)[0]


def test_sixteen_bit_is_scaled_not_clipped():
    assert (_grey(sixteen_bit_png()) == 255).all()
    assert (_grey(i16_tiff()) == 255).all()
    assert (_grey(pgm_16bit()) == 255).all()
    half = prepare_image(load_image(sixteen_bit_rgb_png()), 8, 3)
    assert abs(int(half.mean()) - 128) <= 1


def test_animation_keeps_first_frame():
    assert (_grey(animated_gif()) == 255).all()
    assert (_grey(animated_webp()) == 255).all()
    assert (_grey(multipage_tiff()) == 255).all()


def test_exif_rotation_is_applied():
    img = load_image(exif_rotated_jpeg())
    assert img.size == (20, 40)  # stored 40 wide x 20 high, displayed rotated a quarter turn
    a = np.asarray(img).astype(int)
    # Orientation 6: the stored top-left corner (x=0, y=0: red 0, green 0) is displayed top-right.
    assert a[0, -1, 0] < 40 and a[0, -1, 1] < 40
    assert a[-1, -1, 0] > 200  # stored top-right (red 255) is displayed bottom-right


def test_alpha_is_composited_on_black():
    assert (_grey(transparent_white_rgba_png()) == 0).all()
    assert (_grey(rgb_colour_key_png()) == 0).all()
    pal = _grey(palette_transparency_png(), 8)
    assert pal[0, 0] == 0 and pal[4, 4] > 0  # transparent white -> black; the opaque red pixel stays
    assert (_grey(la_png()) == 128).all()  # white at half opacity


def test_modes_and_channels():
    digit = prepare_image(load_image(bilevel_png()), 28, 1)
    assert set(np.unique(digit)) <= {0, 255} and digit.max() == 255
    rgb = prepare_image(load_image(bilevel_png()), 28, 3)
    assert (rgb[0] == rgb[1]).all() and (rgb[1] == rgb[2]).all()
    cmyk = prepare_image(load_image(cmyk_tiff()), 8, 3)  # magenta ink -> red + blue light
    assert cmyk[0].min() > 200 and cmyk[1].max() < 60 and cmyk[2].min() > 200
    assert (_grey(one_pixel_png()) == 200).all()


def test_shorter_side_scaled_and_centre_cropped():
    a = np.zeros((20, 60), np.uint8)
    a[:, 16:44] = 255  # a white band a little wider than the centre square of a 3:1 image
    out = prepare_image(load_image(a), 10, 1)[0]
    assert out.shape == (10, 10) and out.min() >= 250
    assert prepare_image(load_image(a), 10, 1).max() == 255 and load_image(a).size == (60, 20)


def test_arrays_are_accepted_or_refused_clearly():
    for a in (np.zeros((5, 7)), np.ones((5, 7, 3), np.float32), np.zeros((5, 7, 4), np.uint8),
              np.zeros((5, 7, 1), np.uint16), np.ones((5, 7), bool)):
        assert _check(a).shape == (CHANNELS, SIZE, SIZE)
    for a, words in ((np.zeros((3, 5, 7)), "channels-first"), (np.zeros((5, 7, 2)), "(H, W, C)"),
                     (np.full((5, 7), 2.0), "[0, 1]"), (np.full((5, 7), np.nan), "NaN"),
                     (np.zeros((0, 7)), "no pixels"), (np.zeros((5, 7), complex), "dtype"),
                     (np.zeros((5, 7), object), "dtype")):
        with pytest.raises(ImageInputError, match=words.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")):
            load_image(a)


def test_limits_are_checked_before_decoding(tmp_path):
    with pytest.raises(ImageInputError, match="megapixel"):
        load_image(huge_declared_png())
    with pytest.raises(ImageInputError, match="megapixel"):
        load_image(over_limit_png())
    # The pixel limit is ours: Pillow's process-wide default is left alone.
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > MAX_PIXELS
    p = tmp_path / "big.png"
    p.write_bytes(valid_png())
    with pytest.raises(ImageInputError, match="MiB"):
        load_image(p, max_bytes=100)
    with pytest.raises(ImageInputError, match="MiB"):
        load_image(valid_png(), max_bytes=100)


def test_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for p in (fifo, tmp_path, tmp_path / "missing.png", "nul\x00byte.png"):
        with pytest.raises(ImageInputError):
            load_image(p)
    with pytest.raises(ImageInputError, match="cannot read an image from a int"):
        load_image(3)  # type: ignore[arg-type]


def test_bad_prepare_arguments():
    img = load_image(valid_png())
    for size, ch in ((0, 1), (28, 2), (10**6, 1), (28.0, 1), (True, 1)):
        with pytest.raises(ImageInputError):
            prepare_image(img, size, ch)
    with pytest.raises(ImageInputError):
        prepare_image(np.zeros((4, 4), np.uint8), 8, 1)  # type: ignore[arg-type]


# ---- fuzz ---------------------------------------------------------------------------------------------

_SEEDS = [valid_png(), exif_rotated_jpeg(), animated_gif(), i16_tiff(), palette_transparency_png(),
          _save(Image.new("RGB", (9, 7), (1, 2, 3)), "BMP"), animated_webp(), pgm_16bit(), la_png()]
_FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_sizes = st.sampled_from([1, 7, 28, 64])
_channels = st.sampled_from([1, 3])


@_FUZZ
@given(data=st.binary(max_size=2048), size=_sizes, channels=_channels)
def test_fuzz_random_bytes(data, size, channels):
    _check(data, size, channels)


@_FUZZ
@given(seed=st.sampled_from(range(len(_SEEDS))), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                                  min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**6)), size=_sizes, channels=_channels)
def test_fuzz_mutated_images(seed, flips, cut, size, channels):
    """Real files of every allowed format with bytes overwritten and tails cut off."""
    data = bytearray(_SEEDS[seed])
    for pos, val in flips:
        data[pos % len(data)] = val
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check(bytes(data), size, channels)


_dtypes = st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_, np.int8])


@_FUZZ
@given(a=hnp.arrays(_dtypes, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=12)),
       size=_sizes, channels=_channels)
def test_fuzz_random_arrays(a, size, channels):
    _check(a, size, channels)


def test_random_mutations_stress():
    """Plain random mutations beyond hypothesis's examples: thousands of broken files, fixed seed."""
    rng = random.Random(6)
    for i in range(1500):
        data = bytearray(_SEEDS[i % len(_SEEDS)])
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        _check(bytes(data), 8, 1)


_MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
          "I", "I;16", "I;16B", "I;16L", "F"]


@_FUZZ
@given(mode=st.sampled_from(_MODES), w=st.integers(1, 40), h=st.integers(1, 40), seed=st.integers(0, 2**16),
       size=_sizes, channels=_channels)
def test_fuzz_every_pil_mode(mode, w, h, seed, size, channels):
    """PIL images handed over directly (as gr.Image(type="pil") would), any mode, random pixel bytes
    (for I and F: any int32 or float32, NaN included)."""
    probe = Image.new(mode, (1, 1))
    nbytes = len(probe.tobytes()) * w * h
    img = Image.frombytes(mode, (w, h), np.random.default_rng(seed).bytes(nbytes))
    if mode.startswith("P"):
        img.putpalette(list(np.random.default_rng(seed + 1).integers(0, 256, 768)))
    _check(img, size, channels)


@pytest.mark.parametrize("mode", _MODES)
def test_every_pil_mode_becomes_an_input(mode):
    """Plain, in-range images of every mode load (I and F with values a 16-bit or [0, 1] image holds)."""
    img = Image.new(mode, (9, 5))
    out = _check(img, 8, 3)
    assert isinstance(out, np.ndarray), f"{mode}: {out}"
