"""Metrics: the X2CT-GAN metric table; MAE and PSNR of generated radiographs."""
from orthogen.metrics.radiograph import (
    mean_std,
    radiograph_mae,
    radiograph_metrics,
    radiograph_psnr,
)
from orthogen.metrics.x2ct import (
    cosine_similarity,
    mae,
    mae0,
    mean_metric_table,
    mse,
    mse0,
    psnr_2d_per_axis,
    psnr_3d,
    ssim_3axes,
    x2ct_metric_table,
)

__all__ = [
    "cosine_similarity",
    "mae",
    "mae0",
    "mean_metric_table",
    "mean_std",
    "mse",
    "mse0",
    "psnr_2d_per_axis",
    "psnr_3d",
    "radiograph_mae",
    "radiograph_metrics",
    "radiograph_psnr",
    "ssim_3axes",
    "x2ct_metric_table",
]
