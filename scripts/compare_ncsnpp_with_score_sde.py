"""Check orthogen's NCSN++ against score_sde's own NCSNpp: the same weights, the same outputs.

Needs a checkout of github.com/yang-song/score_sde_pytorch (`--reference`; nothing of it is copied
into this repository). For each case the script builds score_sde's ``models/ncsnpp.py`` ``NCSNpp`` from
a config equivalent to one of ours (``orthogen.networks.NCSNPP_PRESETS``), gives every one of its
weights a random value (its own initialisation, with ``init_scale`` 1 instead of 0 so that no branch
starts at zero, plus seeded noise on every trainable tensor, biases and GroupNorm included), copies
them into orthogen's ``NCSNpp`` by the name map below, runs both on one seeded input at two noise levels
(``eval()``, so dropout is off), in float64 and in float32, and prints the largest absolute difference
of the scores, also relative to the largest score. The exit code is 1 if any case's relative difference
exceeds the tolerance (``--tolerance``; by default 1e-9 in float64, 1e-5 in float32, see ``TOLERANCES``).

    python scripts/compare_ncsnpp_with_score_sde.py --reference /path/to/score_sde_pytorch

**The config** (score_sde reads an ml_collections ``ConfigDict``; ``NCSNpp`` only reads attributes, so
a ``types.SimpleNamespace`` with the same fields stands in, and ml_collections is not needed):
``nf = channels[0]``, ``ch_mult = channels / nf``, ``num_res_blocks``, ``attn_resolutions``,
``dropout`` and ``fir`` from the preset; ``fourier_scale`` 16, ``embedding_type "fourier"``,
``resblock_type "biggan"``, ``skip_rescale``, ``conditional``, ``scale_by_sigma``, swish, the VE
continuous setting; ``progressive = progressive_input = "none"`` and ``data.centered = True`` (our
deviations 1 and 3 in ``orthogen/networks/ncsnpp.py``: no pyramids, no [0, 1] -> [-1, 1] inside the
network). score_sde outputs as many channels as it takes in; ours outputs one (deviation 2), so with 2
input channels our output is compared with score_sde's first channel, and only the first output row of
its last convolution is copied.

**The name map** (deviation 5). Both networks are walked in forward order: score_sde keeps its layers in
one ``all_modules`` list in the order ``forward`` uses them; ours are walked by
:func:`ours_in_forward_order` (Fourier projection, the two embedding Linears, the input convolution,
per encoder level each residual block then its attention, the downsampling block, the middle block,
per decoder level its residual blocks, attention and upsampling block, the output GroupNorm and
convolution). Pairs must have the same kind; inside a pair:

- ``ResnetBlockBigGANpp`` -> diffusers ``ResnetBlock2D``: GroupNorm_0 -> norm1, Conv_0 -> conv1,
  Dense_0 -> time_emb_proj, GroupNorm_1 -> norm2, Conv_1 -> conv2, Conv_2 -> conv_shortcut;
- ``AttnBlockpp`` -> diffusers ``Attention``: GroupNorm_0 -> group_norm, NIN_0/1/2/3 -> to_q/to_k/to_v/
  to_out.0, each ``NIN.W`` (in, out) transposed into ``nn.Linear.weight`` (out, in);
- ``GaussianFourierProjection.W`` -> ``fourier_projection.weight``; Linear, Conv2d, GroupNorm as they are.

**What is worked around in the reference, and only here**: score_sde's ``models/up_or_down_sampling.py``
imports ``op.upfirdn2d``, whose module compiles a CUDA extension at import time
(``torch.utils.cpp_extension.load``), which fails on a machine without nvcc. The script puts a module
``op`` into ``sys.modules`` whose ``upfirdn2d`` is score_sde's own ``op/upfirdn2d.py`` executed without
that one ``load(...)`` statement (parsed with ``ast``, nothing else changed). On CPU tensors score_sde's
``upfirdn2d`` calls its pure-PyTorch ``upfirdn2d_native`` and never the compiled kernel, so the FIR
path compared is score_sde's as it runs on CPU. The one addition: the FIR kernel, which score_sde always
makes float32, is cast to the input's dtype, so that ``--dtype float64`` runs (for float32 a no-op; the
kernel's values, dyadic fractions, are exact in both). Nothing else of the reference is replaced; its
``models/__init__.py``, ``utils.py`` (and ``sde_lib.py``), ``layers.py``, ``layerspp.py`` and
``normalization.py`` are imported as they are.

Cases (``--cases``): ``cpu`` (the ``phantom_cpu`` preset at 64^2: no FIR, attention at 16, 2 input
channels), ``cpu_csm`` (the same with 1 input channel: here the parameter counts must be equal too),
``cpu_fir_attn_16_8`` (FIR on, attention at 16 and 8), ``paper`` (the ``paper`` preset at 256^2: six
levels, FIR; the slow one: for both networks 30 s in float32 and 2-3 minutes in float64 on one CPU thread
of a loaded 2-core machine; the others take seconds).
"""
from __future__ import annotations

import argparse
import ast
import sys
import time
import types
from pathlib import Path

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from orthogen.networks import NCSNPP_PRESETS, NCSNpp
from orthogen.networks.ncsnpp import count_parameters

CASES = {
    "cpu": dict(preset="phantom_cpu", image_size=64, in_channels=2),
    "cpu_csm": dict(preset="phantom_cpu", image_size=64, in_channels=1),
    "cpu_fir_attn_16_8": dict(preset="phantom_cpu", image_size=64, in_channels=2, fir=True,
                              attention_resolutions=(16, 8)),
    "paper": dict(preset="paper", image_size=256, in_channels=2),
}
DEFAULT_CASES = ("cpu", "cpu_csm", "cpu_fir_attn_16_8", "paper")
TOLERANCES = {"float64": 1e-9, "float32": 1e-5}
"""Default relative tolerances. In float64 the two networks agree to rounding (~1e-14); in float32 the
different order of the same operations (diffusers' attention, score_sde's einsums) alone gives ~2e-6.
A wrong layer or scale shows up far larger (the NIN matrices copied untransposed: 0.45)."""

RESNET_NAMES = {"GroupNorm_0": "norm1", "Conv_0": "conv1", "Dense_0": "time_emb_proj", "GroupNorm_1": "norm2",
                "Conv_1": "conv2", "Conv_2": "conv_shortcut"}
ATTENTION_NAMES = {"GroupNorm_0": "group_norm", "NIN_0": "to_q", "NIN_1": "to_k", "NIN_2": "to_v",
                   "NIN_3": "to_out.0"}


def import_reference(reference: Path):
    """score_sde's ``models.ncsnpp`` module, with ``op`` stood in for as the module docstring says."""
    reference = reference.resolve()
    source_file = reference / "op" / "upfirdn2d.py"
    if not (reference / "models" / "ncsnpp.py").is_file() or not source_file.is_file():
        raise SystemExit(f"{reference} is not a score_sde_pytorch checkout (no models/ncsnpp.py or op/upfirdn2d.py)")
    tree = ast.parse(source_file.read_text(), filename=str(source_file))

    def compiles_the_extension(node: ast.stmt) -> bool:
        call = node.value if isinstance(node, ast.Assign) else None
        return isinstance(call, ast.Call) and getattr(call.func, "id", None) == "load"

    dropped = [node for node in tree.body if compiles_the_extension(node)]
    if len(dropped) != 1:
        raise SystemExit(f"expected one load(...) statement in {source_file}, found {len(dropped)}")
    tree.body = [node for node in tree.body if not compiles_the_extension(node)]
    upfirdn2d_module = types.ModuleType("op.upfirdn2d")
    upfirdn2d_module.__file__ = str(source_file)
    exec(compile(tree, str(source_file), "exec"), upfirdn2d_module.__dict__)  # noqa: S102 - the reference's own code
    op = types.ModuleType("op")
    op.__path__ = []
    reference_upfirdn2d = upfirdn2d_module.upfirdn2d

    def upfirdn2d(input, kernel, *args, **kwargs):  # the FIR kernel in the input's dtype (float64 runs)
        return reference_upfirdn2d(input, kernel.to(input.dtype), *args, **kwargs)

    op.upfirdn2d = upfirdn2d
    sys.modules["op"] = op
    sys.modules["op.upfirdn2d"] = upfirdn2d_module

    for name in [n for n in sys.modules if n == "models" or n.startswith("models.") or n == "sde_lib"]:
        del sys.modules[name]
    sys.path.insert(0, str(reference))
    import models.ncsnpp as ncsnpp  # noqa: E402 - from the reference checkout
    if not Path(ncsnpp.__file__).resolve().is_relative_to(reference):
        raise SystemExit(f"imported {ncsnpp.__file__}, not the reference's models/ncsnpp.py")
    return ncsnpp


def reference_config(preset: dict, image_size: int, in_channels: int) -> types.SimpleNamespace:
    """score_sde's config fields for NCSNpp, equivalent to one of our presets (module docstring)."""
    channels = tuple(preset["channels"])
    nf = channels[0]
    if any(c % nf for c in channels):
        raise SystemExit(f"channels {channels} are not multiples of nf = {nf}: no score_sde ch_mult for them")
    model = types.SimpleNamespace(
        name="ncsnpp", nf=nf, ch_mult=tuple(c // nf for c in channels), num_res_blocks=preset["num_res_blocks"],
        attn_resolutions=tuple(preset["attention_resolutions"]), dropout=preset["dropout"], resamp_with_conv=True,
        conditional=True, fir=preset["fir"], fir_kernel=[1, 3, 3, 1], skip_rescale=True, resblock_type="biggan",
        progressive="none", progressive_input="none", progressive_combine="sum", attention_type="ddpm",
        embedding_type="fourier", init_scale=1.0, fourier_scale=16, conv_size=3, nonlinearity="swish",
        normalization="GroupNorm", scale_by_sigma=True, sigma_min=0.01, sigma_max=128.0, num_scales=500)
    data = types.SimpleNamespace(image_size=image_size, num_channels=in_channels, centered=True)
    return types.SimpleNamespace(model=model, data=data, training=types.SimpleNamespace(continuous=True))


def ours_in_forward_order(network: NCSNpp) -> list[tuple[str, nn.Module]]:
    """Our layers in the order NCSNpp.forward uses them (score_sde's ``all_modules`` order)."""
    backbone = network.backbone
    order = [("fourier_projection", network.fourier_projection), ("embedding.linear_1", network.embedding.linear_1),
             ("embedding.linear_2", network.embedding.linear_2), ("backbone.input_conv", backbone.input_conv)]
    for level, stage in enumerate(backbone.down):
        for index, block in enumerate(stage.resnets):
            order.append((f"backbone.down.{level}.resnets.{index}", block))
            if len(stage.attentions):
                order.append((f"backbone.down.{level}.attentions.{index}", stage.attentions[index]))
        if stage.downsample is not None:
            order.append((f"backbone.down.{level}.downsample", stage.downsample))
    order += [("backbone.mid_resnet_1", backbone.mid_resnet_1), ("backbone.mid_attention", backbone.mid_attention),
              ("backbone.mid_resnet_2", backbone.mid_resnet_2)]
    for index, stage in enumerate(backbone.up):
        order += [(f"backbone.up.{index}.resnets.{i}", block) for i, block in enumerate(stage.resnets)]
        if stage.attention is not None:
            order.append((f"backbone.up.{index}.attention", stage.attention))
        if stage.upsample is not None:
            order.append((f"backbone.up.{index}.upsample", stage.upsample))
    order += [("backbone.output_norm", backbone.output_norm), ("backbone.output_conv", backbone.output_conv)]
    return order


def name_map(reference_network: nn.Module, ours: NCSNpp) -> list[tuple[str, str, bool]]:
    """(score_sde parameter name, our parameter name, transpose) for every score_sde parameter."""
    theirs = list(reference_network.all_modules)
    mine = ours_in_forward_order(ours)
    if len(theirs) != len(mine):
        raise SystemExit(f"score_sde has {len(theirs)} layers in forward order, ours {len(mine)}")
    pairs = []
    for index, (their_module, (my_name, my_module)) in enumerate(zip(theirs, mine)):
        kind = type(their_module).__name__
        prefix = f"all_modules.{index}"
        if kind == "ResnetBlockBigGANpp" and isinstance(my_module, ResnetBlock2D):
            for their_name, _ in their_module.named_parameters():
                layer, leaf = their_name.split(".")
                pairs.append((f"{prefix}.{their_name}", f"{my_name}.{RESNET_NAMES[layer]}.{leaf}", False))
        elif kind == "AttnBlockpp" and isinstance(my_module, Attention):
            for their_name, _ in their_module.named_parameters():
                layer, leaf = their_name.split(".")
                my_leaf = {"W": "weight", "b": "bias"}.get(leaf, leaf)  # NIN's W and b; GroupNorm's as they are
                pairs.append((f"{prefix}.{their_name}", f"{my_name}.{ATTENTION_NAMES[layer]}.{my_leaf}", leaf == "W"))
        elif kind == "GaussianFourierProjection" and my_name == "fourier_projection":
            pairs.append((f"{prefix}.W", f"{my_name}.weight", False))
        elif kind == type(my_module).__name__ and kind in ("Linear", "Conv2d", "GroupNorm"):
            pairs += [(f"{prefix}.{n}", f"{my_name}.{n}", False) for n, _ in their_module.named_parameters()]
        else:
            raise SystemExit(f"layer {index}: score_sde's {kind} against our {my_name} ({type(my_module).__name__})")
    return pairs


def copy_weights(reference_network: nn.Module, ours: NCSNpp) -> int:
    """Copy every score_sde weight into ``ours`` by :func:`name_map`; returns the number of tensors copied."""
    theirs = dict(reference_network.named_parameters())
    mine = dict(ours.named_parameters())
    pairs = name_map(reference_network, ours)
    unmapped = set(mine) - {my_name for _, my_name, _ in pairs}
    if unmapped:
        raise SystemExit(f"our parameters without a score_sde counterpart: {sorted(unmapped)}")
    with torch.no_grad():
        for their_name, my_name, transpose in pairs:
            value = theirs[their_name].T if transpose else theirs[their_name]
            target = mine[my_name]
            if value.shape != target.shape:
                if my_name.startswith("backbone.output_conv") and value.shape[1:] == target.shape[1:]:
                    value = value[: target.shape[0]]  # one output channel: score_sde's first (deviation 2)
                else:
                    raise SystemExit(f"{their_name} {tuple(value.shape)} does not fit {my_name} {tuple(target.shape)}")
            target.copy_(value)
    return len(pairs)


def compare(ncsnpp_module, case: dict, seed: int, dtype: torch.dtype) -> dict:
    preset = {**NCSNPP_PRESETS[case["preset"]]}
    preset.update({key: case[key] for key in ("fir", "attention_resolutions") if key in case})
    in_channels, size = case["in_channels"], case["image_size"]
    torch.manual_seed(seed)
    reference_network = ncsnpp_module.NCSNpp(reference_config(preset, size, in_channels))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in reference_network.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    ours = NCSNpp(in_channels=in_channels, out_channels=1, image_size=size, **preset)
    copied = copy_weights(reference_network, ours)
    reference_network.to(dtype).eval()
    ours.to(dtype).eval()
    x = torch.rand(2, in_channels, size, size, generator=generator).to(dtype)
    sigma = torch.tensor([0.5, 20.0], dtype=dtype)
    with torch.no_grad():
        start = time.perf_counter()
        expected = reference_network(x, sigma)[:, :1]
        got = ours(x, sigma)
        seconds = time.perf_counter() - start
    difference = (got - expected).abs().max().item()
    scale = expected.abs().max().item()
    return dict(copied=copied, difference=difference, relative=difference / scale, scale=scale,
                parameters_theirs=count_parameters(reference_network), parameters_ours=count_parameters(ours),
                seconds=seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of yang-song/score_sde_pytorch")
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=list(CASES))
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=list(TOLERANCES))
    parser.add_argument("--tolerance", type=float, default=None,
                        help="largest allowed max |ours - score_sde| / max |score_sde| "
                             f"(default by dtype: {', '.join(f'{k} {v:g}' for k, v in TOLERANCES.items())})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    ncsnpp_module = import_reference(arguments.reference)
    failed = []
    print(f"score_sde: {arguments.reference}  seed {arguments.seed}  2 inputs, sigma 0.5 and 20")
    for dtype_name in arguments.dtype:
        tolerance = TOLERANCES[dtype_name] if arguments.tolerance is None else arguments.tolerance
        for name in arguments.cases:
            result = compare(ncsnpp_module, CASES[name], arguments.seed, getattr(torch, dtype_name))
            verdict = "ok" if result["relative"] <= tolerance else f"DIFFERENT (tolerance {tolerance:g})"
            if CASES[name]["in_channels"] == 1 and result["parameters_theirs"] != result["parameters_ours"]:
                verdict = "DIFFERENT parameter counts"
            if verdict != "ok":
                failed.append(f"{name} {dtype_name}")
            print(f"{dtype_name} {name:18s} {result['copied']} tensors copied, parameters score_sde "
                  f"{result['parameters_theirs']:,} ours {result['parameters_ours']:,}: max |diff| "
                  f"{result['difference']:.3g}, largest |score| {result['scale']:.3g}, relative "
                  f"{result['relative']:.3g}  ({result['seconds']:.1f} s)  {verdict}")
    if failed:
        raise SystemExit(f"outputs differ beyond the tolerance: {', '.join(failed)}")


if __name__ == "__main__":
    main()
