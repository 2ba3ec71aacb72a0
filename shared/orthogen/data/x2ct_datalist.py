"""Datalists for the X2CT bundle: the prepared split, or one input pair given on the command line."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orthogen.errors import InputError

SPLITS = ("training", "validation", "test")


def x2ct_datalist(dataset_dir: str | Path, split: str) -> list[dict[str, str]]:
    """``[{"h5": absolute path}, ...]`` of one split of a prepared dataset (``datalist.json``)."""
    dataset_dir = Path(dataset_dir)
    listing = dataset_dir / "datalist.json"
    if not listing.is_file():
        raise InputError("no datalist.json; prepare the dataset first with `orthogen prepare x2ct`", dataset_dir)
    if split not in SPLITS:
        raise InputError(f"expected one of {SPLITS}, got {split!r}", "split")
    try:
        items = json.loads(listing.read_text())[split]
    except (json.JSONDecodeError, KeyError) as exc:
        raise InputError(f"expected a JSON object with a {split!r} list ({exc})", listing) from None
    if not items:
        raise InputError(f"the {split!r} split is empty", listing)
    return [{"h5": str(dataset_dir / item["h5"])} for item in items]


def inference_datalist(ap: str = "", lateral: str = "", h5: str = "", dataset_dir: str | Path = "",
                       check: Callable[[dict], object] | None = None, split: str = "test") -> list[dict]:
    """What to run inference on: a radiograph pair, a case file, or else the prepared ``split`` (default test).

    ``check`` (the bundle passes its input loader, :class:`orthogen.data.biplanar_input.LoadBiplanarInputd`)
    is run on a pair or case file given on the command line when the datalist is made, so a missing,
    unreadable or implausible input stops with one line before any network is built or run.
    """
    if ap or lateral:
        items = [{"ap": str(ap), "lateral": str(lateral)}]
    elif h5:
        items = [{"h5": str(h5)}]
    else:
        return x2ct_datalist(dataset_dir, split)
    for item in items:
        if check is not None:
            check(item)
    return items
