"""Pack the repository's bundles as a local MONAI model zoo: one zip per bundle and a model_info.json.

Each bundle folder under --bundles-dir with a configs/metadata.json becomes
``<out>/<name>_v<version>.zip`` (top-level folder ``<name>/``, the files git tracks, deterministic), and
``<out>/model_info.json`` gets its ``"<name>_v<version>": {"checksum": <sha256>, "hash_type": "sha256",
"source": ...}`` entry (see orthogen.model_zoo). One line per bundle is printed: name, version, size,
sha256. Fetch a bundle back with ``orthogen.model_zoo.fetch_bundle`` or ``python -m monai.bundle download``.

    python scripts/export_zoo.py --out output/zoo
    python scripts/export_zoo.py --out output/zoo --source-url https://example.org/orthogen-zoo
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from orthogen.errors import InputError, report_input_errors_in_one_line
from orthogen.model_zoo import export_bundle, write_model_info


def bundle_folders(bundles_dir: Path) -> list[Path]:
    """The bundle folders in ``bundles_dir`` (those with configs/metadata.json), sorted by name."""
    folders = sorted(p.parent.parent for p in bundles_dir.glob("*/configs/metadata.json"))
    if not folders:
        raise InputError("no bundle folders; expected <name>/configs/metadata.json inside", bundles_dir)
    return folders


def main(argv: list[str] | None = None) -> None:
    report_input_errors_in_one_line()
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="zoo folder to write (created if missing)")
    parser.add_argument("--bundles-dir", type=Path, default=Path("bundles"), help="folder of bundle folders")
    parser.add_argument("--source-url", default=None,
                        help="base URL the zips will be served from (file:///..., https://...); default: "
                             "sources are the zip names, relative to model_info.json")
    args = parser.parse_args(argv)
    entries = []
    for folder in bundle_folders(args.bundles_dir):
        entry = export_bundle(folder, args.out)
        entries.append(entry)
        print(f"{entry.name}  {entry.version}  {entry.size_bytes / 1e6:.1f} MB  sha256 {entry.sha256}", flush=True)
    print(f"index: {write_model_info(entries, args.out, source_url=args.source_url)}")


if __name__ == "__main__":
    main()
