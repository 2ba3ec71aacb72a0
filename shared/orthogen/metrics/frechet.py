"""The Frechet distance between two Gaussians (the formula of FID), and the Gaussian fit of features.

``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (Dowson & Landau 1982; Heusel et al. 2017).
The matrix square root is :func:`scipy.linalg.sqrtm`. The numerics follow pytorch-fid's
``calculate_frechet_distance`` (https://github.com/mseitzer/pytorch-fid, ``src/pytorch_fid/fid_score.py``),
written here rather than imported, because pytorch-fid downloads Inception weights and pulls torchvision
(torchvision cannot import with the CPU torch here), and neither MONAI 1.6 nor scipy has the Gaussian form on its own:

- if ``sqrtm(S1 S2)`` is not finite (a near-singular product), ``eps`` is added to the diagonals of both
  covariances and the root is taken again; here also when the root does not square back to the product
  (scipy only warns then);
- the root of a product of two PSD matrices has real eigenvalues, so a small imaginary part is round-off
  and is dropped (pytorch-fid raises when it exceeds 1e-3; here the limit is relative to the traces);
- a tiny negative result from round-off is reported as 0.

Covariances are checked: square, of the means' length, finite, symmetric, positive semi-definite
(features from fewer samples than dimensions give singular but valid covariances).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import linalg

from orthogen.errors import InputError, OrthoGenError

logger = logging.getLogger(__name__)

#: Added to both covariances' diagonals when ``sqrtm(S1 S2)`` is not finite (pytorch-fid's default).
FRECHET_EPS = 1e-6
#: Largest relative imaginary part of ``Tr sqrtm(S1 S2)`` accepted as round-off.
IMAGINARY_TOLERANCE = 1e-3
#: A covariance eigenvalue below ``-PSD_TOLERANCE * max(1, largest |eigenvalue|)`` is not round-off.
PSD_TOLERANCE = 1e-6


def _mean(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu" or array.ndim != 1 or array.size == 0:
        raise InputError(f"expected a real mean vector of shape (F,), got {array.dtype} {array.shape}", name)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError("expected finite values, got NaN or inf", name)
    return array


def _covariance(value, size: int, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise InputError(f"expected a real covariance matrix, got dtype {array.dtype}", name)
    array = array.astype(np.float64)
    if array.shape != (size, size):
        raise InputError(f"expected a covariance of shape ({size}, {size}) (the mean's length), got {array.shape}",
                         name)
    if not np.all(np.isfinite(array)):
        raise InputError("expected finite values, got NaN or inf", name)
    scale = max(1.0, float(np.abs(array).max()))
    if not np.allclose(array, array.T, rtol=0.0, atol=1e-8 * scale):
        raise InputError(f"expected a symmetric matrix, got max |S - S^T| = {np.abs(array - array.T).max():.3g}", name)
    array = (array + array.T) / 2
    eigenvalues = np.linalg.eigvalsh(array)
    if eigenvalues[0] < -PSD_TOLERANCE * max(1.0, float(np.abs(eigenvalues).max())):
        raise InputError(f"expected a positive semi-definite covariance, got the eigenvalue {eigenvalues[0]:.3g}", name)
    return array


def _sqrtm(product: np.ndarray, check_residual: bool = True) -> np.ndarray | None:
    """``scipy.linalg.sqrtm(product)``, or None when it is not finite or (``check_residual``) does not square
    back to ``product`` within 1e-6 of its largest entry (scipy's singular-matrix warning is silenced:
    this check decides)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(product)
    if not np.all(np.isfinite(root)):
        return None
    if check_residual:
        scale = max(float(np.abs(product).max()), np.finfo(np.float64).tiny)
        if float(np.abs(root @ root - product).max()) > 1e-6 * scale:
            return None
    return root


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = FRECHET_EPS) -> float:
    """Squared Frechet (2-Wasserstein) distance of N(mu1, sigma1) and N(mu2, sigma2), as FID computes it.

    Args:
        mu1, mu2: (F,) means.
        sigma1, sigma2: (F, F) covariances, symmetric positive semi-definite.
        eps: diagonal offset used when the product's square root is not finite.

    Returns:
        ``||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr sqrtm(sigma1 sigma2)`` >= 0, in the features'
        squared units. Symmetric in its two Gaussians.

    Raises:
        InputError: naming the argument: a mean not (F,), a covariance not (F, F), NaN/inf, a
            covariance not symmetric or not positive semi-definite.
    """
    mu1, mu2 = _mean(mu1, "mu1"), _mean(mu2, "mu2")
    if mu1.shape != mu2.shape:
        raise InputError(f"expected means of one length, got {mu1.shape} and {mu2.shape}", "mu1, mu2")
    sigma1 = _covariance(sigma1, mu1.size, "sigma1")
    sigma2 = _covariance(sigma2, mu1.size, "sigma2")
    if not (np.isfinite(eps) and eps > 0):
        raise InputError(f"expected a small positive number, got {eps!r}", "eps")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if covmean is None:
        logger.info("sqrtm(sigma1 sigma2) is near-singular; adding %g to the covariances' diagonals", eps)
        offset = np.eye(mu1.size) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset), check_residual=False)
        if covmean is None:
            raise OrthoGenError("frechet_distance: sqrtm(sigma1 sigma2) is not finite even after the eps offset")
    trace_covmean = np.trace(covmean)
    scale = max(1.0, float(np.trace(sigma1) + np.trace(sigma2)))
    if np.iscomplexobj(trace_covmean) and abs(trace_covmean.imag) > IMAGINARY_TOLERANCE * scale:
        raise OrthoGenError(f"frechet_distance: Tr sqrtm(sigma1 sigma2) has an imaginary part "
                            f"{trace_covmean.imag:.3g}, too large for round-off")
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * float(np.real(trace_covmean)))
    return max(value, 0.0)


def gaussian_fit(features, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (ddof 1, as pytorch-fid's ``np.cov(rowvar=False)``) of (N, F) features.

    Raises:
        InputError: naming ``name``: not (N, F), NaN/inf, or fewer than 2 samples (no covariance).
    """
    array = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features)
    if array.dtype.kind not in "fiu" or array.ndim != 2 or array.shape[1] == 0:
        raise InputError(f"expected real features of shape (N, F), got {array.dtype} {array.shape}", name)
    if array.shape[0] < 2:
        raise InputError(f"expected at least 2 samples to fit a covariance, got {array.shape[0]}", name)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError("expected finite features, got NaN or inf", name)
    if array.shape[0] <= array.shape[1]:
        logger.info("%s: %d samples of %d features give a singular covariance", name, *array.shape)
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def frechet_distance_of_features(features1, features2, eps: float = FRECHET_EPS,
                                 names: tuple[str, str] = ("features1", "features2")) -> float:
    """:func:`frechet_distance` of the Gaussians fitted to two (N1, F) and (N2, F) feature sets
    (``names``: what error messages call them)."""
    mu1, sigma1 = gaussian_fit(features1, names[0])
    mu2, sigma2 = gaussian_fit(features2, names[1])
    if mu1.shape != mu2.shape:
        raise InputError(f"expected one feature length, got {mu1.size} and {mu2.size}", ", ".join(names))
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps)
