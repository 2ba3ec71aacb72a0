"""The X2CT TensorBoard image grid: tile placement and orientation, and the handler's event file."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from orthogen.errors import InputError
from orthogen.handlers import X2CTImageGridHandler, x2ct_image_grid


def _tiny_sample():
    """AP/lateral 4x4 and a (D, H, W) = (4, 6, 8) CT pair with single bright voxels.

    Largest tile: the axial (H, W) = 6 x 8, so the grid is (5 * 6, 3 * 8) = (30, 24) and tiles are centred
    in 6 x 8 cells: a (4, 4) tile at offset (1, 2), (4, 8) at (1, 0), (4, 6) at (1, 1), (6, 8) at (0, 0).
    """
    image = np.zeros((2, 4, 4), np.float32)
    image[0, 1, 2] = 1.0  # AP
    image[1, 3, 0] = 0.5  # lateral
    label = np.zeros((1, 4, 6, 8), np.float32)
    label[0, 2, 3, 4] = 1.0  # at the centre slice of all three axes (4 // 2, 6 // 2, 8 // 2)
    pred = np.zeros((1, 4, 6, 8), np.float32)
    pred[0, 2, 3, 1] = 3.0  # on the coronal and axial mid-slices only; clipped to 1
    return image, label, pred


def _expected_tiny_grid() -> np.ndarray:
    grid = np.zeros((30, 24), np.float32)
    grid[0 + 1 + 1, 0 + 2 + 2] = 1.0  # AP (1, 2)
    grid[0 + 1 + 3, 8 + 2 + 0] = 0.5  # lateral (3, 0)
    # real mid-slices: coronal (D, W) = (2, 4); sagittal (D, H) = (2, 3); axial (H, W) = (3, 4) -> row 6-1-3 = 2
    grid[6 + 1 + 2, 0 + 0 + 4] = 1.0
    grid[6 + 1 + 2, 8 + 1 + 3] = 1.0
    grid[6 + 0 + 2, 16 + 0 + 4] = 1.0
    # generated mid-slices: coronal (2, 1); axial (3, 1) -> row 2; sagittal slice W = 4 misses the voxel
    grid[12 + 1 + 2, 0 + 0 + 1] = 1.0
    grid[12 + 0 + 2, 16 + 0 + 1] = 1.0
    # real mean projections: along H (/6) at (2, 4), along W (/8) at (2, 3), along D (/4) at flipped (2, 4)
    grid[18 + 1 + 2, 0 + 0 + 4] = 1 / 6
    grid[18 + 1 + 2, 8 + 1 + 3] = 1 / 8
    grid[18 + 0 + 2, 16 + 0 + 4] = 1 / 4
    # generated projections of the clipped voxel (value 1): (2, 1), (2, 3), flipped (2, 1)
    grid[24 + 1 + 2, 0 + 0 + 1] = 1 / 6
    grid[24 + 1 + 2, 8 + 1 + 3] = 1 / 8
    grid[24 + 0 + 2, 16 + 0 + 1] = 1 / 4
    return grid


def test_grid_places_every_known_voxel_in_its_tile():
    grid = x2ct_image_grid(*_tiny_sample())
    assert grid.shape == (30, 24)
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid, _expected_tiny_grid(), atol=1e-7)


def test_grid_accepts_torch_tensors_like_numpy():
    image, label, pred = _tiny_sample()
    grid = x2ct_image_grid(torch.from_numpy(image), torch.from_numpy(label), torch.from_numpy(pred))
    np.testing.assert_allclose(grid, _expected_tiny_grid(), atol=1e-7)


@pytest.mark.parametrize(
    "shapes, source",
    [
        (((1, 4, 4), (1, 4, 6, 8), (1, 4, 6, 8)), "image"),
        (((2, 4, 4), (4, 6, 8), (1, 4, 6, 8)), "label"),
        (((2, 4, 4), (1, 4, 6, 8), (1, 4, 6, 6)), "pred"),
    ],
)
def test_grid_rejects_wrong_shapes_naming_the_argument(shapes, source):
    arrays = [np.zeros(shape, np.float32) for shape in shapes]
    with pytest.raises(InputError) as error:
        x2ct_image_grid(*arrays)
    assert error.value.source == source


def _random_batch(seed: int, size: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(2, 2, size, size, generator=generator),
        "label": torch.rand(2, 1, size, size, size, generator=generator),
        "pred": torch.rand(2, 1, size, size, size, generator=generator),
    }


def _logged_images(log_dir) -> list:
    accumulator = EventAccumulator(str(log_dir), size_guidance={IMAGES: 0})
    accumulator.Reload()
    return accumulator.Images("x2ct")


def test_handler_writes_one_grid_per_epoch_from_a_batched_dict(tmp_path):
    batches = [_random_batch(seed) for seed in range(3)]
    engine = Engine(lambda engine, batch: batch)
    handler = X2CTImageGridHandler(log_dir=str(tmp_path), interval=1, epoch_level=True)
    handler.attach(engine)
    engine.run(batches, max_epochs=2, epoch_length=3)
    handler.close()

    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = _logged_images(tmp_path)
    assert [event.step for event in events] == [1, 2]
    last = batches[-1]  # EPOCH_COMPLETED sees the last iteration's output; its first sample is drawn
    expected = x2ct_image_grid(last["image"][0], last["label"][0], last["pred"][0])
    assert (events[-1].height, events[-1].width) == expected.shape == (40, 24)
    decoded = np.asarray(Image.open(io.BytesIO(events[-1].encoded_image_string)), dtype=np.float32)
    np.testing.assert_allclose(decoded[..., 0], np.floor(expected * 255), atol=1)


def test_handler_at_iteration_level_reads_decollated_output(tmp_path):
    batches = [_random_batch(seed) for seed in range(4)]
    decollated = [[{key: value[i] for key, value in batch.items()} for i in range(2)] for batch in batches]
    engine = Engine(lambda engine, batch: batch)
    handler = X2CTImageGridHandler(log_dir=str(tmp_path), interval=2, epoch_level=False, tag="x2ct")
    handler.attach(engine)
    engine.run(decollated, max_epochs=1)
    handler.close()

    events = _logged_images(tmp_path)
    assert [event.step for event in events] == [2, 4]
    first = decollated[1][0]
    expected = x2ct_image_grid(first["image"], first["label"], first["pred"])
    decoded = np.asarray(Image.open(io.BytesIO(events[0].encoded_image_string)), dtype=np.float32)
    np.testing.assert_allclose(decoded[..., 0], np.floor(expected * 255), atol=1)


def test_handler_names_missing_output_keys(tmp_path):
    engine = Engine(lambda engine, batch: {"image": batch["image"], "pred": batch["pred"]})
    handler = X2CTImageGridHandler(log_dir=str(tmp_path))
    handler.attach(engine)
    with pytest.raises(InputError, match="label"):
        engine.run([_random_batch(0)], max_epochs=1)
    handler.close()
