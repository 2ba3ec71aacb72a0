"""One TensorBoard image per epoch (or iteration) that shows an X2CT sample at a glance.

MONAI's :class:`~monai.handlers.TensorBoardImageHandler` writes the input, label and output as separate
images (3D ones as GIFs along one axis); comparing a generated CT with the real one and with the two
radiographs it came from wants them side by side, with orthogonal slices and projections, in one image.

Grid layout (5 rows x 3 columns of tiles, every tile in [0, 1], centred in a cell of the largest tile's
size, padding 0). Columns 0 and 1 are in the frames of the AP and lateral radiographs, so each column
compares like with like; CT axes are (D, H, W) = superior->inferior, posterior->anterior, right->left::

    row 0  AP radiograph (rows D, cols W) | lateral radiograph (rows D, cols H) | blank
    row 1  real CT mid-slices:       coronal (D, W) | sagittal (D, H) | axial (H, W)
    row 2  generated CT mid-slices:  coronal        | sagittal        | axial
    row 3  real CT mean projections: along H (D, W) | along W (D, H)  | along D (H, W)
    row 4  generated CT projections: along H        | along W         | along D

Axial tiles are flipped top-bottom so that anterior is up, as radiology viewers show them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from ignite.engine import Engine, Events
from monai.handlers import TensorBoardHandler
from monai.utils import CommonKeys, convert_to_numpy

from orthogen.errors import InputError

GRID_ROWS = 5
GRID_COLUMNS = 3


def _as_float_array(value: Any, name: str) -> np.ndarray:
    """A tensor / MetaTensor / array as a float32 numpy array, or an InputError naming ``name``."""
    try:
        return np.asarray(convert_to_numpy(value), dtype=np.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"expected a tensor or array, got {type(value).__name__}", name) from exc


def _ct_tiles(volume: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(D, H, W) CT in [0, 1] -> ([coronal, sagittal, axial] mid-slices, [along H, W, D] mean projections)."""
    depth, height, width = volume.shape
    slices = [volume[:, height // 2, :], volume[:, :, width // 2], volume[depth // 2, ::-1, :]]
    projections = [volume.mean(axis=1), volume.mean(axis=2), volume.mean(axis=0)[::-1, :]]
    return slices, projections


def x2ct_image_grid(image: Any, label: Any, pred: Any) -> np.ndarray:
    """Build the grid of the module docstring from one sample.

    Args:
        image: (2, S, S) AP (channel 0) and lateral (channel 1) radiographs in [0, 1].
        label: (1, D, H, W) real CT in [0, 1] (HU window mapped linearly).
        pred: (1, D, H, W) generated CT; values outside [0, 1] are clipped before slicing and projecting.

    Returns:
        (5 * th, 3 * tw) float32 in [0, 1], where th x tw is the largest tile (rows x columns).
    """
    image = _as_float_array(image, "image")
    label = _as_float_array(label, "label")
    pred = _as_float_array(pred, "pred")
    if image.ndim != 3 or image.shape[0] != 2:
        raise InputError(f"expected (2, S, S) AP and lateral radiographs, got shape {image.shape}", "image")
    for name, volume in (("label", label), ("pred", pred)):
        if volume.ndim != 4 or volume.shape[0] != 1:
            raise InputError(f"expected a one-channel CT of shape (1, D, H, W), got shape {volume.shape}", name)
    if label.shape != pred.shape:
        raise InputError(f"expected the shape of label {label.shape}, got {pred.shape}", "pred")

    real_slices, real_projections = _ct_tiles(np.clip(label[0], 0.0, 1.0))
    fake_slices, fake_projections = _ct_tiles(np.clip(pred[0], 0.0, 1.0))
    radiographs = np.clip(image, 0.0, 1.0)
    rows: list[list[np.ndarray | None]] = [
        [radiographs[0], radiographs[1], None],
        real_slices,
        fake_slices,
        real_projections,
        fake_projections,
    ]
    tiles = [tile for row in rows for tile in row if tile is not None]
    cell_rows = max(tile.shape[0] for tile in tiles)
    cell_cols = max(tile.shape[1] for tile in tiles)
    grid = np.zeros((GRID_ROWS * cell_rows, GRID_COLUMNS * cell_cols), dtype=np.float32)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile is None:
                continue
            top = r * cell_rows + (cell_rows - tile.shape[0]) // 2
            left = c * cell_cols + (cell_cols - tile.shape[1]) // 2
            grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def first_sample(output: Any) -> tuple[Any, Any, Any]:
    """(image, label, pred) of the first sample of an engine output.

    ``output`` is a dict with ``"image"``, ``"label"``, ``"pred"`` — batched (image (B, 2, S, S)) or not
    (image (2, S, S)) — or a list of such dicts after decollation, of which the first is used.
    """
    if isinstance(output, Sequence) and not isinstance(output, (str, bytes)):
        if not output:
            raise InputError("expected at least one sample, got an empty list", "engine.state.output")
        output = output[0]
    if not isinstance(output, Mapping):
        raise InputError(f"expected a dict or a list of dicts, got {type(output).__name__}", "engine.state.output")
    keys = (CommonKeys.IMAGE, CommonKeys.LABEL, CommonKeys.PRED)
    missing = [key for key in keys if key not in output]
    if missing:
        raise InputError(f"expected keys {list(keys)}, missing {missing}", "engine.state.output")
    image, label, pred = (output[key] for key in keys)
    if np.ndim(image) == 4:
        return image[0], label[0], pred[0]
    return image, label, pred


class X2CTImageGridHandler(TensorBoardHandler):
    """Write :func:`x2ct_image_grid` of the engine's first output sample to TensorBoard.

    Args:
        summary_writer: a TensorBoard ``SummaryWriter``; by default one is created on ``log_dir``.
        log_dir: where the default writer writes event files.
        interval: write every ``interval`` epochs (``epoch_level``) or iterations.
        epoch_level: True for epoch level, False for iteration level.
        output_transform: maps ``engine.state.output`` to what :func:`first_sample` accepts.
        global_iter_transform: maps the epoch / iteration number to the TensorBoard step (e.g. the
            trainer's epoch, for a handler on an evaluator).
        tag: the TensorBoard image tag.
    """

    def __init__(
        self,
        summary_writer: Any = None,
        log_dir: str = "./runs",
        interval: int = 1,
        epoch_level: bool = True,
        output_transform: Callable[[Any], Any] = lambda output: output,
        global_iter_transform: Callable[[int], int] = lambda step: step,
        tag: str = "x2ct",
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        if interval < 1:
            raise InputError(f"expected a positive number of epochs or iterations, got {interval}", "interval")
        self.interval = interval
        self.epoch_level = epoch_level
        self.output_transform = output_transform
        self.global_iter_transform = global_iter_transform
        self.tag = tag

    def attach(self, engine: Engine) -> None:
        """Run on every ``interval``-th EPOCH_COMPLETED (or ITERATION_COMPLETED) of ``engine``."""
        event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
        engine.add_event_handler(event(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        step = self.global_iter_transform(engine.state.epoch if self.epoch_level else engine.state.iteration)
        grid = x2ct_image_grid(*first_sample(self.output_transform(engine.state.output)))
        self._writer.add_image(self.tag, grid, step, dataformats="HW")
        self._writer.flush()
