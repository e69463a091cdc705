"""What the UI asks of a loaded run, in plain values: lists of floats in, lists of floats and strings out.

The UI (explorer/ui/) calls only these functions and the store; every tensor operation happens here or
below (latent, directions, maps, inversion, render). Derived data is cached per run in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from explorer import latent as L
from explorer.directions import (
    COLLAPSED_KL,
    ClassDirections,
    DimInfo,
    class_coord,
    dim_info,
    fit_class_directions,
    pca_coords,
    set_class_coord,
    set_pca_coords,
)
from explorer.maps import pca_basis, predicted_labels
from explorer.render import data_uri, render
from explorer.store import Run, Store

MAX_DIM_SLIDERS = 32  # per-dimension sliders are offered for latents up to this size
N_PCS = 10  # principal-direction sliders
ROUND = 4  # decimals of latent values sent to the browser


@dataclass(frozen=True)
class SliderSpec:
    label: str
    lo: float
    hi: float
    visible: bool = True
    info: str | None = None

    @property
    def step(self) -> float:
        return float(f"{(self.hi - self.lo) / 200:.2g}") or 0.001


@dataclass(frozen=True)
class Controls:
    """The slider layout for a run."""

    dims: list[SliderSpec]  # MAX_DIM_SLIDERS entries; hidden beyond the latent size
    pcs: list[SliderSpec]  # N_PCS entries
    classes: list[str]  # class-direction choices ([] when the run has no labels)
    label_source: str | None  # "dataset", "classifier" or None
    truncation: bool  # a GAN: offer the truncation slider
    dims_available: bool
    dims_note: str
    pcs_note: str


# ---- cached per run ----------------------------------------------------------------------------------

def dims(run: Run) -> DimInfo:
    return run.cached("dims", lambda: dim_info(run.z, run.checkpoint.latents.get("logvar")))


def labels(store: Store, run: Run) -> tuple[np.ndarray, list[str], str | None]:
    """(labels (N,), label names, source) used for colours, class directions and class samples.
    Dataset labels for AE/VAE; for a GAN the predictions of the project's classifier when there is one."""
    lab = run.labels
    names = run.label_names
    if (lab >= 0).any():
        return lab, names, "dataset"
    clf = store.classifier_for(run)
    if clf is None:
        return lab, names, None
    pred, _ = predicted_labels(run, clf)
    n_cls = int(getattr(clf.config, "num_classes", pred.max() + 1))
    names = names if len(names) >= n_cls else [str(i) for i in range(n_cls)]
    return pred, names, "classifier"


def class_directions(store: Store, run: Run) -> ClassDirections | None:
    def compute():
        lab, names, _ = labels(store, run)
        return fit_class_directions(run.z, lab, names)

    return run.cached("class-directions", compute)


def controls(store: Store, run: Run) -> Controls:
    d = run.latent_dim
    info = dims(run)
    specs: list[SliderSpec] = []
    for slot in range(MAX_DIM_SLIDERS):
        if slot >= d or d > MAX_DIM_SLIDERS:
            specs.append(SliderSpec(f"dim {slot}", -1.0, 1.0, visible=False))
            continue
        i = info.order[slot]
        label = f"z{i}"
        if info.kl is not None:
            kl = float(info.kl[i])
            label += f" · KL {kl:.2f}" + (" · collapsed" if info.collapsed[i] else "")
        specs.append(SliderSpec(label, round(float(info.lo[i]), 3), round(float(info.hi[i]), 3)))
    basis = pca_basis(run, N_PCS)
    pcs = []
    for k in range(N_PCS):
        if k >= basis.k:
            pcs.append(SliderSpec(f"PC{k + 1}", -1.0, 1.0, visible=False))
            continue
        lo, hi = float(basis.lo[k]), float(basis.hi[k])
        pad = 0.1 * (hi - lo)
        what = "of image variance" if run.kind == "gan" else "of variance"
        pcs.append(SliderSpec(f"PC{k + 1} · {100 * float(basis.explained[k]):.1f}% {what} (σ)",
                              round(lo - pad, 2), round(hi + pad, 2)))
    cd = class_directions(store, run)
    _, _, source = labels(store, run)
    if d > MAX_DIM_SLIDERS:
        dims_note = f"{d} dimensions: too many for one slider each; use the principal directions."
    elif info.kl is not None:
        n_col = sum(info.collapsed)
        dims_note = (f"Ordered by KL (nats, average over the data): {d - n_col} of {d} dimensions in use,"
                     f" {n_col} collapsed (KL < {COLLAPSED_KL}), listed last. Ranges are the data's.")
    else:
        dims_note = "Ranges are those of the data's encodings." if run.has_encoder else \
            "Ranges are those of the prior draws."
    if run.kind == "gan":
        pcs_note = (f"GANSpace: PCA of the images of {min(len(run.z), 2000):,} prior draws, each component"
                    f" regressed back to a latent direction; the top {basis.k} explain"
                    f" {100 * float(basis.explained.sum()):.0f}% of the image variance. Units: σ of the draws.")
    else:
        pcs_note = (f"PCA of {len(run.z):,} encodings; the top {basis.k} directions explain"
                    f" {100 * float(basis.explained.sum()):.0f}% of the variance. Units: σ of the data along each"
                    " direction.")
    return Controls(specs, pcs, list(cd.names) if cd is not None else [], source, run.kind == "gan",
                    d <= MAX_DIM_SLIDERS, dims_note, pcs_note)


# ---- latents -------------------------------------------------------------------------------------------

def _z(run: Run, z: Sequence[float]) -> torch.Tensor:
    return L.as_latent(z, run.latent_dim)


def _out(z: torch.Tensor) -> list[float]:
    return [float(v) for v in z.tolist()]


def default_latent(run: Run) -> list[float]:
    """The latent a fresh session starts with: the prior draw of seed 0."""
    return _out(L.seed_latent(run.model, 0))


def center_latent(run: Run) -> list[float]:
    """The mean of the run's latents: every principal coordinate 0 ("reset")."""
    return _out(torch.from_numpy(run.z).float().mean(0))


def seed_latent(run: Run, seed: int, truncation: float = 1.0) -> list[float]:
    return _out(L.seed_latent(run.model, L.check_seed(seed), truncation))


def retruncate(run: Run, z: Sequence[float], psi_old: float, psi_new: float) -> list[float]:
    """z re-scaled from truncation ψ_old to ψ_new around the prior mean (0)."""
    psi_old = max(float(psi_old), 1e-3)
    return _out(L.truncate(_z(run, z), float(psi_new) / psi_old))


def parse_latent(run: Run, text: str) -> list[float]:
    return _out(L.parse_latent(text, run.latent_dim))


def format_latent(z: Sequence[float]) -> str:
    return L.format_latent(z)


def check_latent(run: Run, z: Sequence[float]) -> list[float]:
    return _out(_z(run, z))


# ---- sliders -------------------------------------------------------------------------------------------

def dim_values(run: Run, z: Sequence[float]) -> list[float]:
    """Per-dimension slider values in display order (MAX_DIM_SLIDERS entries, 0 for unused slots)."""
    if run.latent_dim > MAX_DIM_SLIDERS:
        return [0.0] * MAX_DIM_SLIDERS
    order = dims(run).order
    vals = [round(float(z[i]), ROUND) for i in order]
    return vals + [0.0] * (MAX_DIM_SLIDERS - len(vals))


def pc_values(run: Run, z: Sequence[float]) -> list[float]:
    basis = pca_basis(run, N_PCS)
    c = pca_coords(basis, _z(run, z)).tolist()
    return [round(float(v), ROUND) for v in c] + [0.0] * (N_PCS - basis.k)


def class_value(store: Store, run: Run, z: Sequence[float], class_name: str | None) -> float:
    cd = class_directions(store, run)
    if cd is None or not class_name or class_name not in cd.names:
        return 0.0
    return round(class_coord(cd, cd.names.index(class_name), _z(run, z)), ROUND)


def class_range(store: Store, run: Run, class_name: str | None) -> tuple[float, float]:
    cd = class_directions(store, run)
    if cd is None or not class_name or class_name not in cd.names:
        return -3.0, 3.0
    i = cd.names.index(class_name)
    lo, hi = float(cd.lo[i]), float(cd.hi[i])
    pad = 0.1 * (hi - lo)
    return round(lo - pad, 2), round(hi + pad, 2)


def latent_from_dims(run: Run, values: Sequence[float]) -> list[float]:
    """The latent whose per-dimension sliders (display order) read ``values``."""
    d = run.latent_dim
    if d > MAX_DIM_SLIDERS:
        raise ValueError(f"this model has {d} latent dimensions; per-dimension sliders go up to {MAX_DIM_SLIDERS}")
    if len(values) < d:
        raise ValueError(f"expected {d} slider values, got {len(values)}")
    z = [0.0] * d
    for slot, i in enumerate(dims(run).order):
        z[i] = float(values[slot])
    return check_latent(run, z)


def latent_from_pcs(run: Run, z: Sequence[float], values: Sequence[float]) -> list[float]:
    """``z`` moved so its principal coordinates read ``values`` (σ units); the rest of z is kept."""
    basis = pca_basis(run, N_PCS)
    if len(values) < basis.k:
        raise ValueError(f"expected {basis.k} principal-direction values, got {len(values)}")
    coords = L.as_latent([float(v) for v in values[: basis.k]], basis.k)
    return _out(set_pca_coords(basis, _z(run, z), coords))


def latent_with_dim(run: Run, z: Sequence[float], slot: int, value: float) -> list[float]:
    """``z`` with the dimension shown on per-dimension slider ``slot`` set to ``value``; one slider's move,
    so the browser sends one value per move instead of every slider's."""
    if run.latent_dim > MAX_DIM_SLIDERS:
        raise ValueError(f"this model has {run.latent_dim} latent dimensions; per-dimension sliders go up to"
                         f" {MAX_DIM_SLIDERS}")
    order = dims(run).order
    if not 0 <= slot < len(order):
        raise ValueError(f"dimension slider {slot} does not exist; this model has {len(order)}")
    out = list(check_latent(run, z))
    out[order[slot]] = float(value)
    return check_latent(run, out)


def latent_with_pc(run: Run, z: Sequence[float], index: int, value: float) -> list[float]:
    """``z`` moved along principal direction ``index`` until that coordinate reads ``value`` (σ units);
    every other coordinate, and the rest of z, kept."""
    basis = pca_basis(run, N_PCS)
    if not 0 <= index < basis.k:
        raise ValueError(f"principal direction {index} does not exist; this model has {basis.k}")
    zt = _z(run, z)
    coords = pca_coords(basis, zt)
    coords[index] = float(value)
    return _out(set_pca_coords(basis, zt, coords))


def latent_from_class(store: Store, run: Run, z: Sequence[float], class_name: str, value: float) -> list[float]:
    cd = class_directions(store, run)
    if cd is None:
        raise ValueError(f"{run.name} has no labels, so there are no class directions")
    if class_name not in cd.names:
        raise ValueError(f"unknown class {class_name!r}; choose one of {list(cd.names)}")
    return _out(set_class_coord(cd, cd.names.index(class_name), _z(run, z), float(value)))


# ---- images ----------------------------------------------------------------------------------------------

def image_uri(run: Run, z: Sequence[float]) -> str:
    """The decoded image of z as a PNG data URI at the model's resolution (the browser upscales it)."""
    return data_uri(render(run.model, _z(run, z)))


def image(run: Run, z: Sequence[float]) -> np.ndarray:
    """The decoded image of z as uint8 (H, W, C)."""
    return render(run.model, _z(run, z))


def dataset_sample(store: Store, run: Run, class_name: str | None, k: int) -> tuple[list[float], str]:
    """The latent of the k-th stored row of class ``class_name`` (None or "any": any row), and what it is."""
    lab, names, source = labels(store, run)
    if class_name in (None, "", "any"):
        rows = np.arange(len(run.z))
    else:
        if class_name not in names:
            raise ValueError(f"unknown class {class_name!r}; choose one of {names or ['any']}")
        rows = np.flatnonzero(lab == names.index(class_name))
        if len(rows) == 0:
            raise ValueError(f"{run.name} has no stored latents of class {class_name!r}")
    k = int(k)
    if k < 0:
        raise ValueError(f"the sample number must be 0 or more, got {k}")
    row = int(rows[k % len(rows)])
    return _out(torch.from_numpy(run.z[row])), describe_row(store, run, row)


def describe_row(store: Store, run: Run, row: int) -> str:
    lab, names, source = labels(store, run)
    what = "encoding of dataset image" if run.has_encoder else "prior draw"
    text = f"{what} #{row}"
    if lab[row] >= 0:
        name = names[lab[row]] if lab[row] < len(names) else str(lab[row])
        text += f" · {'label' if source == 'dataset' else 'classified as'} {name}"
    split = run.checkpoint.latents.get("split")
    if split is not None:
        text += " · held-out" if split[row] == 0 else " · training set"
    return text


def pca_map_latent(run: Run, x: float, y: float) -> list[float]:
    """The latent at (x, y) of the PCA map (σ units along PC1 and PC2, 0 along the others)."""
    from explorer.directions import pca_point

    if not (np.isfinite(x) and np.isfinite(y)):
        raise ValueError("map coordinates must be finite numbers")
    return _out(pca_point(pca_basis(run, N_PCS), float(x), float(y)))


def row_latent(run: Run, row: int) -> list[float]:
    if not 0 <= int(row) < len(run.z):
        raise ValueError(f"row {row} is not on this map (it has rows 0..{len(run.z) - 1})")
    return _out(torch.from_numpy(run.z[int(row)]))


# ---- uploads -------------------------------------------------------------------------------------------

_UPLOAD_CACHE_SIZE = 64


@dataclass(frozen=True)
class Upload:
    z: list[float]
    pixels: np.ndarray  # uint8 (C, H, W): what the model saw
    recon: np.ndarray  # uint8 (C, H, W): decode(z)
    mse: float
    psnr: float
    note: str  # what was done to the image, one line
    method: str  # "encoder" or "projection"


def upload(store: Store, run: Run, source, invert: str = "auto", progress=None, framing: str = "crop") -> Upload:
    """Encode (AE/VAE) or project (GAN) an uploaded image, with its reconstruction and error. Results are
    cached per run, image content and options (the last few dozen), so sending the same upload to several
    places costs one encoding."""
    import hashlib
    from collections import OrderedDict

    from explorer.inversion import (
        background_is_dark,
        latent_of_upload,
        prepare_upload,
        reconstruct,
        reconstruction_error,
    )

    dark = run.cached("dark-background", lambda: background_is_dark(run.images))
    if dark is None and run.kind == "gan":
        # A GAN stores no dataset images; judge its own samples instead.
        dark = run.cached("dark-background-samples",
                          lambda: background_is_dark(render(run.model, torch.from_numpy(run.z[:64])).transpose(0, 3, 1, 2)))
    prep = prepare_upload(source, run.image_shape, invert, dark, framing)
    key = hashlib.sha1(prep.pixels.tobytes() + prep.note.encode()).hexdigest()
    lru: OrderedDict = run.cached("uploads", OrderedDict)
    hit = lru.get(key)
    if hit is not None:
        lru.move_to_end(key)
        return hit
    z = latent_of_upload(run.model, prep.pixels, progress=progress)
    recon = reconstruct(run.model, z)
    mse, psnr = reconstruction_error(prep.pixels, recon)
    result = Upload(_out(z), prep.pixels, recon, mse, psnr, prep.note,
                    "encoder" if run.has_encoder else "projection")
    lru[key] = result
    while len(lru) > _UPLOAD_CACHE_SIZE:
        lru.popitem(last=False)
    return result


def display_pixels(pixels: np.ndarray, target: int = 224) -> np.ndarray:
    """uint8 (C, H, W) or (H, W, C) -> nearest-upscaled (H', W') grey or (H', W', 3) colour for display."""
    from explorer.render import display_scale, upscale

    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = a.transpose(1, 2, 0)
    a = upscale(a, display_scale(a.shape[0], target))
    return a[..., 0] if a.shape[2] == 1 else a


def interpolation(run: Run, a: Sequence[float], b: Sequence[float], steps: int, method: str,
                  gif_path: str) -> tuple[np.ndarray, str]:
    """Frames from a to b: a strip image (for display) and an animated GIF written to ``gif_path``."""
    from explorer.render import display_scale, gif_bytes, grid, upscale

    zs = L.interpolate(_z(run, a), _z(run, b), int(steps), method)
    frames = render(run.model, zs)
    size = run.image_shape[1]
    strip = upscale(grid(frames, columns=min(len(frames), 16)), max(1, display_scale(size, 84)))
    with open(gif_path, "wb") as f:
        f.write(gif_bytes(frames, scale=display_scale(size, 224)))
    return (strip[..., 0] if strip.shape[2] == 1 else strip), gif_path
