"""Project-MONAI/model-zoo's bundle checks (``ci/verify_bundle.py``), vendored for the tests, pinned.

Source: https://github.com/Project-MONAI/model-zoo at commit dfae206df112837d817e78d3727c9f32b3b52e82
(2024-10-11; ``ci/verify_bundle.py`` last changed in c3159015c49281a314bdb0cb21098586b16f7846). Licence:
Apache License 2.0, the same as this repository's LICENSE; each file keeps model-zoo's licence header.

Only what ``verify(bundle, models_path, mode="min")`` runs is copied, from three files of ``ci/``:

- ``verify_bundle.py``: ``necessary_files_list``, ``preferred_files_list``, ``_find_bundle_file``,
  ``_find_license_file``, ``verify_bundle_directory``, ``verify_version_changes``,
  ``verify_metadata_format`` and ``verify``;
- ``utils.py``: ``get_json_dict`` and ``download_large_files``;
- ``bundle_custom_data.py``: ``exclude_download_large_file_list`` and
  ``exclude_verify_preferred_files_list``.

Changes made here (Apache-2.0 section 4(b)): the functions not listed are left out, so are the imports
only they use; ``from utils import ...`` / ``from bundle_custom_data import ...`` are package-relative
imports; ``verify`` stops after the ``min`` / ``regular`` checks and raises NotImplementedError for
``full``, whose checks (bundle properties, network shapes, TorchScript export) are not vendored. The code
of the functions kept is unchanged.
"""
