# OrthoGen: `make demo` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_VENV := .venv-bench
OUT ?= output/demo

.PHONY: setup demo test test-slow bench bench-setup spine-x2ct-model knee-radiograph-data knee-radiograph-models knee-radiograph-table knee-ct-data knee-ct-model knee-ct-sr-data knee-ct-sr-model serve-deps orthanc serve demo-study stop zoo clean

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch is pinned exactly (see STACK.md).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e .
	# pytest (and selenium, for the OHIF viewer test) apart: pip 26 fails to resolve a [test] extra beside the exact monai pin (jsonschema,
	# for verify_metadata, comes with monailabel: pydicom-seg pins it below 4)
	$(BIN)/python -m pip install -q "pytest>=8" "selenium==4.51.0"
	touch $(STAMP)

demo: setup
	$(BIN)/orthogen demo --out $(OUT)

# The tests start a real Orthanc: serve-deps installs it (apt, as root) or says what to install.
test: setup serve-deps
	$(BIN)/python -m pytest -q

test-slow: setup serve-deps
	$(BIN)/python -m pytest -q -m slow

# DiffDRR is the reference for the DRR benchmark only: a separate venv, never a runtime dependency.
# --no-deps because its declared deps (torchvision, timm, pyvista[all]) pull a CUDA torch.
bench-setup: setup
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q "torch==2.13.0" torchio fastcore einops scipy nibabel pandas matplotlib
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps "diffdrr==0.6.1"

bench: bench-setup
	$(BIN)/python scripts/bench_drr.py --reference-python $(BENCH_VENV)/bin/python

# The shipped spine_x2ct_gan weights: 80 phantom spines (seeds 100-179) -> vertebra cases at 32^3 ->
# the default training config (32^3 network, 30 + 30 epochs at batch 2, ~75 min on 2 cores) -> bundles/spine_x2ct_gan/models/model.pt,
# then the evaluation on the held-out phantom test split.
X2CT_BUNDLE := bundles/spine_x2ct_gan
spine-x2ct-model: setup
	rm -rf output/spine_x2ct_phantoms $(X2CT_BUNDLE)/data/x2ct
	$(BIN)/orthogen phantom spine --seed 100 --count 80 --out output/spine_x2ct_phantoms > /dev/null
	$(BIN)/orthogen prepare x2ct output/spine_x2ct_phantoms --out $(X2CT_BUNDLE)/data/x2ct --size 32
	cd $(X2CT_BUNDLE) && ../../$(BIN)/python -m monai.bundle run training \
		--config_file configs/train.json --bundle_root .
	cd $(X2CT_BUNDLE) && ../../$(BIN)/python -m monai.bundle run evaluating \
		--config_file "['configs/inference.json','configs/evaluate.json']" --bundle_root .

# The shipped knee_radiograph_diffusion weights: 33 phantom knees (seeds 100-132, 80^3 at 2 mm) -> 60
# DRRs each at 64x64 with their contour and contour+bone segmentations, split 9:1:1 by knee -> the five
# models of the seed's Table I (CTM and U-Net per condition, one unconditional CSM), one after another.
# Epochs as shipped (the docs give the times on 2 cores): short CPU runs, the U-Nets and the CSM shortest.
KNEE_RADIOGRAPH := bundles/knee_radiograph_diffusion
KNEE_RADIOGRAPH_RUN := cd $(KNEE_RADIOGRAPH) && ../../$(BIN)/python -m monai.bundle run
knee-radiograph-data: setup
	rm -rf output/knee_phantoms $(KNEE_RADIOGRAPH)/data/knee_radiographs
	$(BIN)/orthogen phantom knee --seed 100 --count 33 --shape 80 --spacing 2.0 --out output/knee_phantoms > /dev/null
	$(BIN)/orthogen prepare knee-radiographs output/knee_phantoms --out $(KNEE_RADIOGRAPH)/data/knee_radiographs \
		--size 64 --workers 2

# The contour+bone CTM as shipped (0.4.0; models/model.pt, the bundle's default): 8 epochs, then 12 more from those EMA weights (a fresh Adam state, seed 1).
# Then the two preconditioned CTMs (configs/preconditioned.json, 0.5.0): from scratch, 20 and 16 epochs.
knee-radiograph-models: knee-radiograph-data
	for run in "ctm contour_bone 8" "unet contour_bone 4" "ctm contour 6" "unet contour 3" "csm contour_bone 2"; do \
		set -- $$run; \
		($(KNEE_RADIOGRAPH_RUN) training --config_file "['configs/train.json','configs/train_$$1.json']" \
			--bundle_root . --condition $$2 --max_epochs $$3) || exit 1; \
	done
	$(KNEE_RADIOGRAPH_RUN) training --config_file "['configs/train.json','configs/train_ctm.json']" --bundle_root . \
		--condition contour_bone --max_epochs 12 --seed 1 --init_from models/model.pt \
		--output_dir runs/ctm_contour_bone_more --ckpt_path runs/ctm_contour_bone_more/ctm_contour_bone.pt
	cp $(KNEE_RADIOGRAPH)/runs/ctm_contour_bone_more/ctm_contour_bone.pt $(KNEE_RADIOGRAPH)/models/model.pt
	for run in "contour_bone 20" "contour 16"; do \
		set -- $$run; \
		($(KNEE_RADIOGRAPH_RUN) training --config_file "['configs/train.json','configs/train_ctm.json','configs/preconditioned.json']" \
			--bundle_root . --condition $$1 --max_epochs $$2 --output_dir runs/ctm_$$1_preconditioned) || exit 1; \
	done

# The seed's Table I on the phantom test split (TEST_IMAGES evenly spaced test images; the PC sampler
# at 1000 NFE takes ~30 s per image on 2 cores): eval/table_one_phantom.csv, printed beside the paper's.
TEST_IMAGES ?= 12
knee-radiograph-table: setup
	for run in "unet contour" "unet contour_bone" "csm contour" "csm contour_bone" "ctm contour" "ctm contour_bone"; do \
		set -- $$run; \
		($(KNEE_RADIOGRAPH_RUN) evaluating --config_file "['configs/inference.json','configs/evaluate.json']" \
			--bundle_root . --method $$1 --condition $$2 --test_images $(TEST_IMAGES)) || exit 1; \
	done

# The serving stack's Orthanc (docs/serving.md): Debian packages orthanc 1.10 + orthanc-dicomweb (installed
# as root with apt, else the script says what to install), our config, pid file, log and data in
# output/orthanc, http://127.0.0.1:8042 with DICOMweb on /dicom-web/ (remote clients refused). `make stop`
# stops what `make orthanc` started, by its pid.
ORTHANC_DIR := output/orthanc
ORTHANC_PORT := 8042
# then the OHIF viewer (npm pack @ohif/app, pinned by version and sha256, pruned) into build/ohif-viewer.
OHIF_VIEWER := build/ohif-viewer
serve-deps: setup
	sh scripts/install_serving_deps.sh
	$(BIN)/python -m orthogen.serving.ohif_viewer install --dest $(OHIF_VIEWER)

orthanc: setup serve-deps
	$(BIN)/python -m orthogen.serving.orthanc_server start --folder $(ORTHANC_DIR) --http-port $(ORTHANC_PORT)

# The whole stack: our Orthanc, then the MONAI Label server of apps/orthogen_label on its DICOMweb root
# (127.0.0.1:8000, OHIF at /ohif/; pid file, log and DICOMweb cache in output/label_server). `make stop`
# stops both, by pid. `make demo-study` uploads a phantom knee study (CT + DX AP + DX lateral) to Orthanc.
LABEL_DIR := output/label_server
LABEL_PORT := 8000
serve: orthanc
	$(BIN)/python -m orthogen.serving.label_server start --folder $(LABEL_DIR) --port $(LABEL_PORT) \
		--studies http://127.0.0.1:$(ORTHANC_PORT)/dicom-web

demo-study: setup
	rm -rf output/demo_study
	$(BIN)/python scripts/load_demo_study.py --url http://127.0.0.1:$(ORTHANC_PORT) --out output/demo_study

stop:
	$(BIN)/python -m orthogen.serving.label_server stop --folder $(LABEL_DIR)
	$(BIN)/python -m orthogen.serving.orthanc_server stop --folder $(ORTHANC_DIR)

# The shipped knee_xray2ct_diffusion weights: 100 phantom knees (seeds 300-399) on five scanner grids (20 each:
# 153.6 mm at 1.6 mm; 160 x 150 mm at 2.0 / 1.5 mm slices; 140 x 175 mm at 1.25 / 2.5 mm; 150 x 192 mm at
# 1.5 / 3.0 mm; 120 mm at 1.0 mm), so the cube edge, pixel spacing and slice thickness vary -> 64^3 view-aligned
# cubes + 128^2 AP/lateral DRRs, split 8:1:1 by knee -> the 32^3 stage, models/model.pt (epochs as shipped: see the bundle docs).
KNEE_CT := bundles/knee_xray2ct_diffusion
KNEE_CT_GRIDS := "96 1.6" "80,80,100 2.0,2.0,1.5" "112,112,70 1.25,1.25,2.5" "100,100,64 1.5,1.5,3.0" "120 1.0"
knee-ct-data: setup
	rm -rf output/knee_ct_phantoms $(KNEE_CT)/data/knee_ct
	seed=300; for grid in $(KNEE_CT_GRIDS); do set -- $$grid; \
		$(BIN)/orthogen phantom knee --seed $$seed --count 20 --shape $$1 --spacing $$2 --out output/knee_ct_phantoms > /dev/null || exit 1; \
		seed=$$((seed + 20)); done
	$(BIN)/orthogen prepare knee-ct output/knee_ct_phantoms --out $(KNEE_CT)/data/knee_ct --size 64 --drr-size 128 --workers 2

# One run, as shipped (0.5.0): the default phantom_cpu_views network (the views also back-projected) from scratch,
# KNEE_CT_EPOCHS epochs of 20 Adam steps at batch 4, seed 0: 2,100 steps, 89 min on 2 cores alone (51 s per epoch, measured 2026-12-06).
KNEE_CT_EPOCHS ?= 105
KNEE_CT_TRAIN := cd $(KNEE_CT) && ../../$(BIN)/python -m monai.bundle run training --config_file configs/train.json \
	--meta_file configs/metadata.json --logging_file configs/logging.conf
knee-ct-model: knee-ct-data
	$(KNEE_CT_TRAIN) --max_epochs $(KNEE_CT_EPOCHS)

# The shipped super-resolution weights (models/model_sr.pt): 48 phantom knees (seeds 600-647) at 160^3 x 1 mm ->
# 128^3 view-aligned cubes (split 8:1:1 by knee) -> 32^3 -> 128^3 pairs, 32^3 training patches, 60 epochs.
knee-ct-sr-data: setup
	rm -rf output/knee_sr_phantoms $(KNEE_CT)/data/knee_ct_sr
	$(BIN)/orthogen phantom knee --seed 600 --count 48 --shape 160 --spacing 1.0 --out output/knee_sr_phantoms > /dev/null
	$(BIN)/orthogen prepare knee-ct output/knee_sr_phantoms --out $(KNEE_CT)/data/knee_ct_sr --size 128 --drr-size 64 --workers 2

knee-ct-sr-model: knee-ct-sr-data
	cd $(KNEE_CT) && ../../$(BIN)/python -m monai.bundle run training --config_file configs/train_sr.json \
		--meta_file configs/metadata.json --logging_file configs/logging.conf

# The bundles as a local MONAI model zoo: <name>_v<version>.zip (git-tracked files, deterministic) + model_info.json (sha256).
ZOO ?= output/zoo
zoo: setup
	$(BIN)/python scripts/export_zoo.py --out $(ZOO)

clean:
	rm -rf output
