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

# Vendored from Project-MONAI/model-zoo ci/bundle_custom_data.py at dfae206df112837d817e78d3727c9f32b3b52e82;
# modified by OrthoGen: only the two lists verify_bundle.py's `min` mode reads (see __init__.py).


# This list is used for our CI tests to determine whether a bundle contains the preferred files.
# If a bundle does not have any of the preferred files, please add the bundle name into the list.
exclude_verify_preferred_files_list = ["pediatric_abdominal_ct_segmentation", "maisi_ct_generative"]

# This list is used for our CI tests to determine whether a bundle needs to be tested after downloading
# the large files.
# If a bundle contains large files that are too lage (like > 10GB), please add the bundle name into the list.
# For bundles in this list, related tests will be skipped in Github Actions, but they will still be tested in blossom CI.
exclude_download_large_file_list = ["maisi_ct_generative"]
