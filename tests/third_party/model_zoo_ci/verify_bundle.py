# Copyright (c) MONAI Consortium
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# Vendored from Project-MONAI/model-zoo ci/verify_bundle.py at dfae206df112837d817e78d3727c9f32b3b52e82;
# modified by OrthoGen: only what `verify(..., mode="min")` runs, package-relative imports, and `verify`
# stops after the min / regular checks (see __init__.py).

import os
import sys

from monai.bundle import verify_metadata

from .bundle_custom_data import exclude_download_large_file_list, exclude_verify_preferred_files_list
from .utils import download_large_files, get_json_dict

# files that must be included in a bundle
necessary_files_list = ["configs/metadata.json", "LICENSE"]
# files that are preferred to be included in a bundle
preferred_files_list = ["models/model.pt", "configs/inference.json"]


def _find_bundle_file(root_dir: str, file: str, suffix=("json", "yaml", "yml")):
    # find bundle file with possible suffix
    file_name = None
    for name in suffix:
        full_name = f"{file}.{name}"
        if full_name in os.listdir(root_dir):
            file_name = full_name

    return file_name


def _find_license_file(bundle_path: str):
    """
    Searches for a LICENSE file or a file starting with LICENSE. with any extension in the bundle path.
    Returns the path to the license file if found, otherwise None.
    """
    # Check for a file exactly named LICENSE
    license_exact_path = os.path.join(bundle_path, "LICENSE")
    if os.path.exists(license_exact_path):
        return license_exact_path

    # Return None if no license file is found
    return None


def verify_bundle_directory(models_path: str, bundle_name: str, mode: str):
    """
    According to [MONAI Bundle Specification](https://docs.monai.io/en/latest/mb_specification.html),
    as well as the requirements of model zoo, some files are necessary with the bundle. For example:
    "models/model.pt", "configs/metadata.json".
    This function is used to verify these files. For bundles that contain the download links for large
    files, the links should be saved in "large_files.yml" (or .json, .yaml).
    All large files (if exist) will be downloaded before verification.

    """

    bundle_path = os.path.join(models_path, bundle_name)

    # download large files (if exist) first
    if bundle_name in exclude_download_large_file_list and mode == "min":
        print(f"skip downloading large files for bundle: {bundle_name}.")
    else:
        large_file_name = _find_bundle_file(bundle_path, "large_files")
        if large_file_name is not None:
            try:
                download_large_files(bundle_path=bundle_path, large_file_name=large_file_name)
            except Exception as e:
                raise ValueError(f"Download large files in {bundle_path} error.") from e

    # verify necessary files are included
    for file in necessary_files_list:
        if file == "LICENSE":
            # check if LICENSE file exists
            license_file_path = _find_license_file(bundle_path)
            if license_file_path is None:
                raise ValueError(f"necessary file {file} is not existing.")
        else:
            if not os.path.exists(os.path.join(bundle_path, file)):
                raise ValueError(f"necessary file {file} is not existing.")

    # verify preferred files are included
    if bundle_name not in exclude_verify_preferred_files_list:
        for file in preferred_files_list:
            if file == "configs/inference.json":
                # inference config file may have different suffix
                inference_file_name = _find_bundle_file(os.path.join(bundle_path, "configs"), "inference")
                if inference_file_name is None:
                    raise ValueError("inference config file is not existing.")
            else:
                if not os.path.exists(os.path.join(bundle_path, file)):
                    raise ValueError(f"necessary file {file} is not existing.")


def verify_version_changes(models_path: str, bundle_name: str):
    """
    This function is used to verify if "version" and "changelog" are correct in "configs/metadata.json".
    In addition, if changing an existing bundle, a new version number should be provided.

    """

    bundle_path = os.path.join(models_path, bundle_name)

    meta_file_path = os.path.join(bundle_path, "configs/metadata.json")
    metadata = get_json_dict(meta_file_path)
    if "version" not in metadata:
        raise ValueError(f"'version' is missing in configs/metadata.json of bundle: {bundle_name}.")
    if "changelog" not in metadata:
        raise ValueError(f"'changelog' is missing in configs/metadata.json of bundle: {bundle_name}.")

    # version number should be in changelog
    latest_version = metadata["version"]
    if latest_version not in metadata["changelog"].keys():
        raise ValueError(
            f"version number: {latest_version} is missing in 'changelog' in configs/metadata.json of bundle: {bundle_name}."
        )

    # If changing an existing bundle, a new version number should be provided
    model_info_path = os.path.join(models_path, "model_info.json")
    model_info = get_json_dict(model_info_path)
    bundle_name_with_version = f"{bundle_name}_v{latest_version}"
    if bundle_name_with_version in model_info.keys():
        raise ValueError(
            f"version number: {latest_version} is already used of bundle: {bundle_name}. Please change it."
        )


def verify_metadata_format(bundle_path: str):
    """
    This function is used to verify the metadata format.

    """
    verify_metadata(
        meta_file=os.path.join(bundle_path, "configs/metadata.json"),
        filepath=os.path.join(bundle_path, "eval/schema.json"),
    )


def verify(bundle, models_path="models", mode="full"):
    print(f"start verifying {bundle}:")
    # add bundle path to ensure custom code can be used
    sys.path = [os.path.join(models_path, bundle)] + sys.path
    # verify bundle directory
    verify_bundle_directory(models_path, bundle, mode)
    print("directory is verified correctly.")
    if mode != "regular":
        # verify version, changelog
        verify_version_changes(models_path, bundle)
        print("version and changelog are verified correctly.")
    # verify metadata format and data
    bundle_path = os.path.join(models_path, bundle)
    verify_metadata_format(bundle_path)
    print("metadata format is verified correctly.")

    if mode in ["min", "regular"]:
        return

    # OrthoGen: full mode's checks (bundle properties, network shapes, TorchScript export) are not vendored
    raise NotImplementedError(f"mode {mode!r}: only the min and regular checks are vendored")
