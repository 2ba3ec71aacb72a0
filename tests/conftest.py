"""Shared test fixtures: a small phantom dataset written in the CTSpine1K layout."""
import pytest

from orthogen.data.case_layout import write_case
from orthogen.phantoms import spine_phantom


@pytest.fixture(scope="session")
def spine_phantom_root(tmp_path_factory):
    """Four small spine phantoms (seeds 0-3, 48x48x64 voxels at 3 mm) as data/ + label/ pairs."""
    root = tmp_path_factory.mktemp("spine_phantoms")
    for seed in range(4):
        p = spine_phantom(seed=seed, shape=(48, 48, 64), spacing=(3.0, 3.0, 3.0))
        write_case(p.volume_hu, p.labels, p.affine, root, f"spine_{seed:04d}")
    return root
