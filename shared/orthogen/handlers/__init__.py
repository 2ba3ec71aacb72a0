"""Ignite event handlers (MONAI style) that MONAI's own handlers do not cover."""
from orthogen.handlers.tensorboard_x2ct_grid import X2CTImageGridHandler, x2ct_image_grid

__all__ = ["X2CTImageGridHandler", "x2ct_image_grid"]
