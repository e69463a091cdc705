"""From an uploaded image to a latent: preprocessing for the model, encoding (AE/VAE) or projection by
optimisation (GAN), and the reconstruction error.

Decoding of the upload itself (formats, size limits, colour modes) is ``explorer.images``; this module
adds what is specific to a model: its size and channels, and an explicit option to invert colours, since
MNIST-style models know light strokes on a dark background while a photo of a digit on paper is the
opposite.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.images import ImageInputError, load_image, prepare_image
from explorer.render import to_model_input, to_pixels

INVERT_CHOICES = ("auto", "no", "yes")
FRAMING_CHOICES = ("crop", "centre strokes")
_WORK_SIZE = 112  # the upload is prepared at this size first when its strokes are re-framed


@dataclass(frozen=True)
class PreparedUpload:
    pixels: np.ndarray  # uint8 (C, H, W), what the model sees
    inverted: bool
    note: str  # one line for the UI: what was done to the upload


def background_is_dark(images: np.ndarray | None) -> bool | None:
    """Whether a dataset's images (M, C, H, W) uint8 have dark borders (MNIST: yes). None if unknown."""
    if images is None or len(images) == 0:
        return None
    a = images[:, :, [0, -1], :].astype(np.float32).mean()
    b = images[:, :, :, [0, -1]].astype(np.float32).mean()
    return bool((a + b) / 2 < 64)


def prepare_upload(source: str | os.PathLike | bytes | np.ndarray, image_shape: tuple[int, int, int],
                   invert: str = "auto", dark_background: bool | None = None,
                   framing: str = "crop") -> PreparedUpload:
    """An uploaded image as the model's input pixels (C, H, W) uint8.

    ``invert``: "yes", "no", or "auto" = invert when the model's data has dark borders
    (``dark_background``) and the upload's border is light. ``framing``: "crop" (scale the shorter side
    and centre-crop) or "centre strokes": MNIST's own preprocessing (LeCun et al. 1998): the light strokes'
    bounding box scaled into the central 20/28 of the frame and centred on their centre of mass, which
    is what a digit photographed edge to edge needs. Raises ImageInputError with a clear message.
    """
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {INVERT_CHOICES}, got {invert!r}")
    if framing not in FRAMING_CHOICES:
        raise ValueError(f"framing must be one of {FRAMING_CHOICES}, got {framing!r}")
    if source is None:
        raise ImageInputError("no image was uploaded; upload a PNG, JPEG, GIF, BMP, WEBP, TIFF or PPM/PGM image")
    c, h, w = image_shape
    if h != w:
        raise ValueError(f"the model's images are {h}x{w}; only square models are supported")
    img = load_image(source)
    pixels = prepare_image(img, h if framing == "crop" else max(h, _WORK_SIZE), c)
    border = np.concatenate([pixels[:, [0, -1], :].ravel(), pixels[:, :, [0, -1]].ravel()]).astype(np.float32)
    light_border = float(border.mean()) > 127
    if invert == "yes":
        do, why = True, "colours inverted (asked for)"
    elif invert == "no":
        do, why = False, "colours kept (asked for)"
    elif dark_background and light_border:
        do, why = True, "colours inverted automatically: the model was trained on light strokes on a dark background"
    else:
        do, why = False, "colours kept"
    if do:
        pixels = 255 - pixels
    if framing != "crop":
        pixels = centre_strokes(pixels, h)
        why += "; strokes centred MNIST-style"
    return PreparedUpload(np.ascontiguousarray(pixels), do, why)


def centre_strokes(pixels: np.ndarray, size: int, box: float = 20 / 28) -> np.ndarray:
    """Light strokes on a dark background (C, H, W) uint8 -> (C, size, size): their bounding box scaled
    to fit ``box`` of the frame (aspect kept) and the result centred on its centre of mass."""
    from PIL import Image

    grey = pixels.astype(np.float32).mean(0)
    grey = grey - np.percentile(grey, 10)  # background to ~0, whatever its level
    mask = grey > 0.25 * max(float(grey.max()), 1e-6)
    if not mask.any():
        raise ImageInputError("the image has no strokes to centre (it is blank); upload another image or"
                              " choose framing 'crop'")
    ys, xs = np.nonzero(mask)
    crop = pixels[:, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    ch, cw = crop.shape[1:]
    scale = box * size / max(ch, cw)
    nh, nw = max(1, round(ch * scale)), max(1, round(cw * scale))
    chans = [np.asarray(Image.fromarray(ch_).resize((nw, nh), Image.Resampling.LANCZOS)) for ch_ in crop]
    small = np.stack(chans).astype(np.float32)
    mass = small.mean(0)
    total = float(mass.sum()) or 1.0
    cy = float((mass.sum(1) * np.arange(nh)).sum()) / total
    cx = float((mass.sum(0) * np.arange(nw)).sum()) / total
    top = int(round(size / 2 - cy))
    left = int(round(size / 2 - cx))
    top = min(max(top, 0), size - nh)
    left = min(max(left, 0), size - nw)
    out = np.zeros((pixels.shape[0], size, size), np.float32)
    out[:, top:top + nh, left:left + nw] = small
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reconstruction_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(MSE, PSNR in dB) between two uint8 images of the same shape, with pixels scaled to [0, 1]."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2))
    psnr = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
    return mse, psnr


@torch.inference_mode()
def encode_pixels(model: torch.nn.Module, pixels: np.ndarray) -> torch.Tensor:
    """Latent (D,) of uint8 pixels (C, H, W) through the model's encoder (AE/VAE: the posterior mean)."""
    if not callable(getattr(model, "encode", None)):
        raise ValueError(f"a {model.kind} has no encoder; use project() to find a latent by optimisation")
    device = next(model.parameters()).device
    return model.encode(to_model_input(pixels, tuple(model.value_range), device))[0].float().cpu()


def project(model: torch.nn.Module, pixels: np.ndarray, *, steps: int = 300, candidates: int = 256,
            lr: float = 0.05, prior_weight: float = 1e-3, seed: int = 0,
            progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """Find z with decode(z) ≈ pixels by gradient descent (GAN inversion, e.g. Zhu et al. 2016, "iGAN").

    Starts from the best of ``candidates`` prior draws, then runs Adam on the pixel MSE plus a small pull
    towards the prior (``prior_weight`` · |z|² / D) so z stays where the generator was trained.
    ``progress(fraction)`` is called along the way. Returns (D,) on the CPU.
    """
    device = next(model.parameters()).device
    target = to_model_input(pixels, tuple(model.value_range), device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.inference_mode():
        z0 = model.sample_latent(candidates, generator=gen, device="cpu").to(device)
        errs = torch.cat([(model.decode(c) - target).pow(2).flatten(1).mean(1) for c in z0.split(128)])
    z = z0[errs.argmin()].clone()[None].requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for i in range(steps):
        loss = F.mse_loss(model.decode(z), target) + prior_weight * z.pow(2).mean()
        # Gradient for z only: the shared model's weights are never touched (other users decode with it).
        (z.grad,) = torch.autograd.grad(loss, [z])
        opt.step()
        if progress is not None and (i % 10 == 0 or i == steps - 1):
            progress((i + 1) / steps)
    return z.detach()[0].float().cpu()


def latent_of_upload(model: torch.nn.Module, pixels: np.ndarray, *,
                     progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """Encode (AE/VAE) or project (GAN) uploaded pixels (C, H, W) uint8 to a latent (D,)."""
    if callable(getattr(model, "encode", None)):
        return encode_pixels(model, pixels)
    return project(model, pixels, progress=progress)


@torch.inference_mode()
def reconstruct(model: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    """Decoded pixels of z (D,) as uint8 (C, H, W), the same layout as the prepared upload."""
    device = next(model.parameters()).device
    return to_pixels(model.decode(z[None].to(device)), tuple(model.value_range))[0].transpose(2, 0, 1)
