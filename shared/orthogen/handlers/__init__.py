"""Ignite event handlers (MONAI style) that MONAI's own handlers do not cover."""
from orthogen.handlers.exponential_moving_average import ExponentialMovingAverage
from orthogen.handlers.network_checkpoint_loader import NetworkCheckpointLoader, shape_mismatch
from orthogen.handlers.radiograph_metric_report import RadiographMetricReport
from orthogen.handlers.tensorboard_x2ct_grid import X2CTImageGridHandler, x2ct_image_grid
from orthogen.handlers.x2ct_metric_report import X2CTMetricReport

__all__ = ["ExponentialMovingAverage", "NetworkCheckpointLoader", "RadiographMetricReport", "X2CTImageGridHandler", "X2CTMetricReport",
           "shape_mismatch", "x2ct_image_grid"]

# The knee CT diffusion bundle: progressive stage loading and its metric report.
from orthogen.handlers.inner_stage_loader import InnerStageLoader  # noqa: E402
from orthogen.handlers.knee_ct_metric_report import KneeCTMetricReport  # noqa: E402

__all__ += ["InnerStageLoader", "KneeCTMetricReport"]
