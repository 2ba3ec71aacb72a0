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
from orthogen.metrics.bone_overlap import BONE_THRESHOLD_HU, BoneOverlap, bone_dice_assd, bone_overlap
from orthogen.metrics.frechet import frechet_distance, frechet_distance_of_features, gaussian_fit
from orthogen.metrics.reprojection import reprojected_views, reprojection_geometry, reprojection_psnr
from orthogen.metrics.slice_fid import SliceFID, slice_features, slice_fid, slice_fid_of_features

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
    "BONE_THRESHOLD_HU",
    "BoneOverlap",
    "SliceFID",
    "bone_dice_assd",
    "bone_overlap",
    "frechet_distance",
    "frechet_distance_of_features",
    "gaussian_fit",
    "reprojected_views",
    "reprojection_geometry",
    "reprojection_psnr",
    "slice_features",
    "slice_fid",
    "slice_fid_of_features",
]
