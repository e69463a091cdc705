"""The one bridge between tensors and pixels.

``render`` decodes latents into uint8 pixels (H, W, C); ``to_model_input`` turns uint8 pixels into the
model's input tensor. Everything else here packs pixels for the browser: PNG bytes, a data URI (the
explore view sends the image inline with the event's response, so the browser needs no second request),
nearest-neighbour upscaling for crisp big views of small images, strips and animated GIFs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def to_pixels(x: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """(B, C, H, W) in ``value_range`` -> uint8 (B, H, W, C)."""
    lo, hi = value_range
    x = ((x.detach().float() - lo) * (255.0 / (hi - lo))).clamp_(0, 255).round_()
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_model_input(pixels: np.ndarray, value_range: tuple[float, float],
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (C, H, W) or (B, C, H, W) -> float32 (B, C, H, W) in ``value_range`` on ``device``."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {a.dtype}")
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"pixels must be (C, H, W) or (B, C, H, W), got shape {a.shape}")
    lo, hi = value_range
    a = np.ascontiguousarray(a)
    x = torch.from_numpy(a if a.flags.writeable else a.copy()).to(device).float().div_(255.0)
    return x if (lo, hi) == (0.0, 1.0) else x.mul_(hi - lo).add_(lo)


@torch.inference_mode()
def render(model: torch.nn.Module, z: torch.Tensor, *, value_range: tuple[float, float] | None = None,
           batch_size: int = 256) -> np.ndarray:
    """Decode latents to pixels: z (D,) -> uint8 (H, W, C); z (B, D) -> uint8 (B, H, W, C).

    The single render entry point: the model runs on its own device, in batches, with no autograd.
    """
    device = next(model.parameters()).device
    single = z.ndim == 1
    zb = z[None] if single else z
    value_range = value_range or tuple(model.value_range)
    out = [to_pixels(model.decode(chunk.to(device, torch.float32)), value_range)
           for chunk in zb.split(batch_size)]
    pixels = np.concatenate(out) if len(out) > 1 else out[0]
    return pixels[0] if single else pixels


def upscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of (H, W, C) uint8: crisp pixels, no blur."""
    if factor <= 1:
        return pixels
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def _pil(pixels: np.ndarray) -> Image.Image:
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return Image.fromarray(np.ascontiguousarray(a))


def png_bytes(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """(H, W, C) uint8 as PNG. Level 1: a 28×28 image compresses to a few hundred bytes either way,
    and level 1 is several times faster to encode than the default 6."""
    buf = io.BytesIO()
    _pil(pixels).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def data_uri(pixels: np.ndarray) -> str:
    """(H, W, C) uint8 as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def pixels_from_data_uri(uri: str) -> np.ndarray:
    """Inverse of ``data_uri``: (H, W, C) uint8."""
    head, _, b64 = uri.partition(",")
    if not head.startswith("data:image/"):
        raise ValueError("not an image data URI")
    a = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))
    return a[..., None] if a.ndim == 2 else a


def grid(frames: np.ndarray | Sequence[np.ndarray], columns: int | None = None, pad: int = 1,
         pad_value: int = 40) -> np.ndarray:
    """Frames (T, H, W, C) uint8 as one image with ``columns`` per row (default: all in one row)."""
    frames = np.asarray(frames)
    t, h, w, c = frames.shape
    columns = min(columns or t, t)
    rows = -(-t // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), pad_value, np.uint8)
    for i, f in enumerate(frames):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y:y + h, x:x + w] = f
    return out


def gif_bytes(frames: np.ndarray, *, scale: int = 4, duration_ms: int = 80, boomerang: bool = True) -> bytes:
    """Frames (T, H, W, C) uint8 as a looping animated GIF, upscaled ``scale``× (nearest). ``boomerang``
    plays forwards then backwards so the loop has no jump."""
    seq = list(frames)
    if boomerang and len(seq) > 2:
        seq = seq + seq[-2:0:-1]
    images = [_pil(upscale(f, scale)) for f in seq]
    if images[0].mode == "RGB":
        images = [im.quantize(colors=256, method=Image.Quantize.MEDIANCUT) for im in images]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                   optimize=False, disposal=1)
    return buf.getvalue()


def display_scale(image_size: int, target: int = 448) -> int:
    """Integer upscale factor that brings an ``image_size`` image close to ``target`` pixels."""
    return max(1, round(target / max(1, image_size)))
