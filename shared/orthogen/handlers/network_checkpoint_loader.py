"""Loading a bundle's weights with a one-line error when they were trained for another network preset."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.handlers import CheckpointLoader
from torch import nn

from orthogen.errors import InputError


def _state_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)}


def shape_mismatch(weights: Mapping[str, torch.Tensor], network: nn.Module) -> str | None:
    """None when ``weights`` fit ``network``'s state dict exactly, else the first difference, in words."""
    have, want = _state_shapes(weights), _state_shapes(network.state_dict())
    for key, shape in want.items():
        if key not in have:
            return f"{key} {shape} of the network is not in the file ({len(have)} tensors there, {len(want)} in the network)"
        if have[key] != shape:
            return f"{key} is {have[key]} in the file but {shape} in the configured network"
    extra = sorted(set(have) - set(want))
    return f"{extra[0]} {have[extra[0]]} of the file is not in the network" if extra else None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A weights file as a state dict (a ``{"model": ...}`` checkpoint unwrapped); one-line InputError otherwise."""
    if not path.is_file():
        raise InputError("no such weights file; train the bundle first or set ckpt_path", path)
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ... on bad files
        raise InputError(f"not a readable PyTorch state dict ({type(exc).__name__})", path) from None
    if isinstance(weights, Mapping) and "model" in weights and isinstance(weights["model"], Mapping):
        weights = weights["model"]
    if not isinstance(weights, Mapping):
        raise InputError(f"expected a state dict of tensors, got {type(weights).__name__}", path)
    return dict(weights)


class NetworkCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` for one network, checked when it is built (before the engine starts).

    A missing or unreadable file, or weights whose tensor shapes do not fit the configured network,
    raise one :class:`~orthogen.errors.InputError` line naming the file, the first differing tensor with
    both shapes, and which of the bundle's network presets the weights do fit (the defaults, or an
    override file such as ``configs/paper_scale.json``), so a user knows which ``--config_file`` to add.

    Args:
        load_path: the weights (a plain state dict, as the bundles' CheckpointSaver writes them).
        network: the network to load them into.
        bundle_root: the bundle folder; presets are looked up there.
        base_config: the config (relative to ``bundle_root``) that defines ``network_def``.
        presets: override files (relative to ``bundle_root``) that change ``network_def``.
        map_location: as for ``CheckpointLoader``.
    """

    def __init__(self, load_path: str | Path, network: nn.Module, bundle_root: str | Path = ".",
                 base_config: str = "configs/inference.json", presets: Sequence[str] = ("configs/paper_scale.json",),
                 map_location=None, name: str | None = None):
        super().__init__(load_path=str(load_path), load_dict={"model": network}, name=name,
                         map_location=map_location)
        self.bundle_root, self.base_config, self.presets = Path(bundle_root), base_config, tuple(presets)
        weights = read_weights(Path(load_path))
        problem = shape_mismatch(weights, network)
        if problem is not None:
            raise InputError(f"the weights do not fit the configured network: {problem}; "
                             f"{self._fitting_preset(weights)}", load_path)
        self._network, self._weights = network, weights

    def __call__(self, engine) -> None:
        """Load the weights read and checked at construction: the file is read once, however often it runs."""
        self._network.load_state_dict(self._weights, strict=self.strict)
        self.logger.info(f"Restored all variables from {self.load_path}")

    def _fitting_preset(self, weights: Mapping[str, torch.Tensor]) -> str:
        """Which preset's network the weights fit, as advice in words."""
        base = self.bundle_root / self.base_config
        candidates = [("the default network (no override)", [base])]
        candidates += [(f"the network of {preset} (add it to --config_file)", [base, self.bundle_root / preset])
                       for preset in self.presets if (self.bundle_root / preset).is_file()]
        for description, files in candidates:
            parser = ConfigParser()
            parser.read_config([str(f) for f in files])
            with torch.device("meta"):
                network = parser.get_parsed_content("network_def", instantiate=True)
            if shape_mismatch(weights, network) is None:
                return f"they fit {description}"
        names = ", ".join(["the default network", *self.presets])
        return f"they fit none of this bundle's presets ({names})"
