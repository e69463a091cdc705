"""Quality metrics as pure functions of tensors: no checkpoints, no files (trainer/evaluate.py wires them up).

Feature-space metrics take features from the evaluator network (the digit classifier's penultimate
layer, ``Classifier.features``), not from Inception-v3: their numbers are comparable between models
scored with the same evaluator, never with published FIDs.

- ``frechet_distance``: FID (Heusel et al. 2017) in the evaluator's feature space, "FID-classifier".
- ``inception_score``: IS (Salimans et al. 2016) from the evaluator's class probabilities.
- ``precision_recall``: k-NN manifold precision and recall (Kynkäänniemi et al. 2019);
  ``density_coverage``: their outlier-robust variants (Naeem et al. 2020).
- ``reconstruction_metrics``: per-image MSE, PSNR (dB) and SSIM (Wang et al. 2004; torchmetrics).
- ``vae_elbo`` / ``vae_log_likelihood``: evidence lower bound and the importance-weighted estimate of
  log p(x) (Burda et al. 2016), per image in nats.
- ``memorisation``: nearest-training-image distances of generated samples against those of held-out
  real images (cf. Meehan et al. 2020; the privacy worry of a GAN replaying its training set).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torchmetrics.functional.image import structural_similarity_index_measure


def _f64(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return (a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64))


def _check_2d(name: str, a: np.ndarray, min_rows: int = 2) -> None:
    if a.ndim != 2 or a.shape[0] < min_rows:
        raise ValueError(f"{name} must be (N, D) features with N >= {min_rows}, got shape {a.shape}")


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D), float64, of (N, D) features."""
    f = _f64(features)
    _check_2d("features", f)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (Heusel et al. 2017):

        d² = |μ_a − μ_b|² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½)

    Tr((Σ_a Σ_b)^½) is computed as Σ √λ of the symmetric PSD matrix Σ_a^½ Σ_b Σ_a^½ (same eigenvalues),
    which stays exact when the covariances are singular (dead ReLU features) where ``sqrtm`` warns.
    Depends on N (biased upwards for small sets): compare models at the same N.
    """
    a, b = _f64(features_a), _f64(features_b)
    _check_2d("features_a", a)
    _check_2d("features_b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in width: {a.shape[1]} vs {b.shape[1]}")
    mu_a, sigma_a = a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))
    mu_b, sigma_b = b.mean(0), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = linalg.eigh(sigma_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # Σ_a^½
    lam = linalg.eigvalsh(sqrt_a @ sigma_b @ sqrt_a)
    tr_covmean = np.sqrt(np.clip(lam, 0.0, None)).sum()
    diff = mu_a - mu_b
    d2 = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * tr_covmean
    return float(max(d2, 0.0))


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) ‖ p(y))) from (N, classes) logits, as mean and std over ``splits`` chunks
    (Salimans et al. 2016). Ranges from 1 to the number of classes."""
    if logits.ndim != 2 or logits.shape[0] < splits:
        raise ValueError(f"logits must be (N, classes) with N >= splits={splits}, got {tuple(logits.shape)}")
    log_p = F.log_softmax(logits.double(), dim=1)
    scores = []
    for chunk in log_p.chunk(splits):
        log_py = torch.logsumexp(chunk, 0) - math.log(chunk.shape[0])  # log of the marginal p(y)
        kl = (chunk.exp() * (chunk - log_py)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_nn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row, (N,)."""
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the row itself sits at distance 0


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of
    balls reaching every point's k-th nearest neighbour within the set.

    precision: fraction of fakes inside the real manifold (fidelity);
    recall: fraction of reals inside the fake manifold (coverage). Use equal set sizes, as the paper does.
    """
    real, fake = real_features.double(), fake_features.double()
    for name, f in (("real_features", real), ("fake_features", fake)):
        if f.ndim != 2 or f.shape[0] <= k:
            raise ValueError(f"{name} must be (N, D) with N > k={k}, got {tuple(f.shape)}")
    r_real, r_fake = _kth_nn_radius(real, k), _kth_nn_radius(fake, k)
    d = torch.cdist(fake, real)  # (N_fake, N_real)
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (d.T <= r_fake[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def density_coverage(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), the outlier-robust companions of precision/recall, built
    on the real k-NN balls only: density = mean number of real balls holding a fake, over k (about 1 for
    matching distributions, can exceed 1); coverage = fraction of real balls holding at least one fake.
    A collapsed generator whose one output lands in an outlier's wide ball keeps precision 1 but gets a
    low density and a coverage near 0."""
    real, fake = real_features.double(), fake_features.double()
    if real.ndim != 2 or real.shape[0] <= k or fake.ndim != 2 or fake.shape[0] < 1:
        raise ValueError(f"need (N, D) features with N > k={k}, got {tuple(real.shape)} and {tuple(fake.shape)}")
    inside = torch.cdist(fake, real) <= _kth_nn_radius(real, k)[None, :]  # (N_fake, N_real)
    return float(inside.double().sum(1).mean() / k), float(inside.any(0).double().mean())


def reconstruction_metrics(x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, float]:
    """Mean per-image MSE, PSNR (dB) and SSIM of reconstructions; both (B, C, H, W) in [0, 1]."""
    if x.shape != x_hat.shape:
        raise ValueError(f"images and reconstructions differ in shape: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    x, x_hat = x.double(), x_hat.double().clamp(0.0, 1.0)
    mse = (x - x_hat).pow(2).flatten(1).mean(1)  # (B,)
    psnr = 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))  # data range 1; capped at 100 dB for a perfect copy
    ssim = structural_similarity_index_measure(x_hat, x, data_range=1.0)
    return {"mse": float(mse.mean()), "psnr": float(psnr.mean()), "ssim": float(ssim)}


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 11, σ 1.5) of two (B, C, H, W) batches in [0, 1]."""
    return float(structural_similarity_index_measure(y.double(), x.double(), data_range=1.0))


@torch.no_grad()
def vae_elbo(model, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """ELBO per image, (B,), in nats, one posterior sample: log p(x|z) − KL(q(z|x) ‖ N(0, I)) with
    the Bernoulli decoder of a VAE trained with recon_loss='bce' (β is not applied: this is the bound)."""
    from trainer.models.vae import kl_per_dim

    mu, logvar = model.encode_posterior(x)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + eps * (0.5 * logvar).exp()
    log_px_z = -F.binary_cross_entropy_with_logits(model.decode_logits(z), x, reduction="none").flatten(1).sum(1)
    return log_px_z - kl_per_dim(mu, logvar).sum(1)


@torch.no_grad()
def vae_log_likelihood(model, x: torch.Tensor, k: int = 64, generator: torch.Generator | None = None) -> torch.Tensor:
    """Importance-weighted log p(x) per image, (B,), in nats, with k posterior samples (Burda et al. 2016).
    A tighter bound than the ELBO (equal at k = 1)."""
    return model.log_likelihood(x, k=k, generator=generator)


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """L2 distance from each row of ``queries`` (N, D) to its nearest row of ``reference`` (M, D), (N,)."""
    q, r = queries.flatten(1).float(), reference.flatten(1).float()
    return torch.cat([torch.cdist(c, r).min(1).values for c in q.split(chunk)])


def memorisation(generated: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor) -> dict[str, float]:
    """How close generated images come to the training set, measured against real unseen images.

    All three are image batches in the same range (pixel L2; features work too). Held-out images are
    what "new but realistic" looks like: their nearest-training-image distances are the reference.
    ``ratio`` = median(gen→train) / median(held-out→train): about 1 for a model that generalises,
    well below 1 for one that replays training images (blurry or off-manifold samples push it above 1).
    ``frac_closer_than_p5``: fraction of samples nearer to a training image than 95% of held-out images
    are (about 0.05 by chance; much more means near-copies).
    """
    d_gen = nearest_distances(generated, train).double()
    d_ref = nearest_distances(heldout, train).double()
    p5_ref = torch.quantile(d_ref, 0.05)
    return {
        "gen_to_train_p5": float(torch.quantile(d_gen, 0.05)),
        "gen_to_train_median": float(d_gen.median()),
        "heldout_to_train_p5": float(p5_ref),
        "heldout_to_train_median": float(d_ref.median()),
        "ratio": float(d_gen.median() / d_ref.median().clamp_min(1e-12)),
        "frac_closer_than_p5": float((d_gen < p5_ref).double().mean()),
    }
