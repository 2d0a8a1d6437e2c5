"""TRL's GRPOTrainer on the setting of bench/grpo_throughput.py, timed step by step.

Run by the TRL venv's python (bench/grpo_throughput.py creates it), never by rft's: this file
imports neither rft nor anything from this repository.

    python bench/peers/trl_grpo.py --model ~/.cache/rft/smollm2-135m \
        --prompts prompts.json --steps 4 --warmup 1 --out trl.json

--prompts is a JSON list of prompt texts, already cut to their last 64 tokens, in the order
rft draws them: 8 per step. The output JSON has each optimizer step's wall time and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="the converted SmolLM2 folder")
    ap.add_argument("--prompts", required=True, type=Path, help="JSON list of prompt texts")
    ap.add_argument("--out", required=True, type=Path, help="write the timings JSON here")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps (= generation batches)")
    ap.add_argument("--warmup", type=int, default=1, help="first steps excluded from timing")
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--num-generations", type=int, default=4, help="G")
    ap.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward")
    ap.add_argument("--new-tokens", type=int, default=48, help="min = max new tokens")
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = json.loads(args.prompts.read_text())
    need = args.steps * args.prompts_per_step
    if len(prompts) < need:
        sys.exit(f"{args.prompts}: {len(prompts)} prompts, {need} needed")
    dataset = Dataset.from_dict({"prompt": prompts[:need]})

    analyzer = SentimentIntensityAnalyzer()

    def vader_reward(prompts, completions, **kwargs):
        """(compound + 1) / 2 of the completion alone, as rft's reward=sentiment_vader."""
        return [(analyzer.polarity_scores(c)["compound"] + 1.0) / 2.0 for c in completions]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin: list[float] = []
            self.end: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.begin.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.end.append(time.perf_counter())

    tok = AutoTokenizer.from_pretrained(args.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    # fp32 weights, as rft loads them; bf16 runs as autocast (mixed precision), as rft's
    # Lightning bf16-mixed does. TRL builds its reference model in the policy's dtype (fp32).
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)

    episodes_per_step = args.prompts_per_step * args.num_generations
    if episodes_per_step % args.micro_batch:
        sys.exit(f"--micro-batch {args.micro_batch} must divide {episodes_per_step}")
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="trl-grpo-bench-") as tmp:
        config = GRPOConfig(
            output_dir=tmp,
            use_cpu=True,
            bf16=args.precision == "bf16",
            seed=args.seed,
            max_steps=args.steps,
            learning_rate=args.lr,
            lr_scheduler_type="constant",  # rft: a constant AdamW learning rate
            weight_decay=0.0,
            max_grad_norm=args.max_grad_norm,
            # One optimizer step on the 32 completions of one generation batch, 8 sequences per
            # forward/backward (rft: alg.micro_batch_size=8). TRL counts steps_per_generation
            # in micro-batches: generation_batch_size = 8 × 4 gives it 4, one optimizer step.
            per_device_train_batch_size=args.micro_batch,
            gradient_accumulation_steps=episodes_per_step // args.micro_batch,
            generation_batch_size=episodes_per_step,
            num_generations=args.num_generations,
            num_iterations=1,
            shuffle_dataset=False,  # the prompts in the order rft draws them
            max_completion_length=args.new_tokens,
            generation_kwargs={"min_new_tokens": args.new_tokens},
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=1.0,
            beta=args.beta,  # KL to the reference in the loss, k3 estimator (TRL's only one)
            epsilon=0.2,
            loss_type="grpo",  # mean over each sequence's tokens, then over sequences
            scale_rewards="group",
            gradient_checkpointing=False,  # TRL's default is True; rft's model default is off
            disable_dropout=True,  # rft: model.disable_dropout=true
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=vader_reward,
            args=config,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[timer],
        )
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
        history = [
            {k: v for k, v in row.items() if isinstance(v, (int, float))}
            for row in trainer.state.log_history
        ]

    n = len(timer.end)
    if n < args.steps:
        sys.exit(f"TRL ran {n} optimizer steps, {args.steps} asked")
    # step i's wall time: from the end of step i-1 to the end of step i (everything the loop
    # does, logging included), as rft's history rows give it; step 0 from its begin.
    wall_per_step = [timer.end[0] - timer.begin[0]] + [
        timer.end[i] - timer.end[i - 1] for i in range(1, n)
    ]
    inner_per_step = [e - b for b, e in zip(timer.begin, timer.end)]
    timed = wall_per_step[args.warmup :] or wall_per_step
    eps = [episodes_per_step / s for s in timed]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    report = {
        "side": "trl",
        "episodes_per_step": episodes_per_step,
        "steps": n,
        "warmup_steps": args.warmup,
        "steps_timed": len(timed),
        "step_s": statistics.mean(timed),
        "step_s_all": wall_per_step,
        "step_s_begin_to_end_all": inner_per_step,
        "episodes_per_s": statistics.mean(eps),
        "episodes_per_s_min": min(eps),
        "episodes_per_s_max": max(eps),
        "peak_rss_gb": peak_gb,
        "train_wall_s": wall,
        "completion_lengths": [
            r.get("completions/mean_length") for r in history if "completions/mean_length" in r
        ],
        "rewards": [r.get("reward") for r in history if "reward" in r],
        "history": history,
        "settings": {
            "precision": "bf16 autocast (fp32 weights)" if config.bf16 else "fp32",
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "generation_batch_size": config.generation_batch_size,
            "steps_per_generation": config.steps_per_generation,
            "num_generations": config.num_generations,
            "num_iterations": config.num_iterations,
            "max_completion_length": config.max_completion_length,
            "generation_kwargs": config.generation_kwargs,
            "top_k": config.top_k,
            "temperature": config.temperature,
            "beta": config.beta,
            "kl_estimator": "k3",
            "loss_type": config.loss_type,
            "learning_rate": config.learning_rate,
            "max_grad_norm": config.max_grad_norm,
            "gradient_checkpointing": config.gradient_checkpointing,
            "optim": str(config.optim),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "torch_threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
