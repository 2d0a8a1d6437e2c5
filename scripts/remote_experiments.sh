#!/usr/bin/env bash
# The experiments of issue #27 (docs/results.md "Remote models (issue #27)"), on a CPU:
#
#   scripts/remote_experiments.sh sft                      # the SFT guide (exp4's recipe)
#   scripts/remote_experiments.sh rl ALG SEED [local|remote] [extra overrides...]
#                                                          # ALG = ppo | ppo_pp | dlols from it
#   scripts/remote_experiments.sh serve guide|judge        # vLLM's server (background), then
#   scripts/remote_experiments.sh stop guide|judge         # stop it (prints its CPU seconds)
#   scripts/remote_experiments.sh classifier               # the learned sentiment classifier
#   scripts/remote_experiments.sh judge_ppo SEED [extra overrides...]   # PPO on the judge
#   scripts/remote_experiments.sh judge_ppo_lp SEED [extra...]  # ... its logprob-weighted score
#   python scripts/remote_results.py guide|judge OUT       # the tables (docs/results.md)
#
# Every run folder is $OUT/<name>; `time` appends wall and CPU seconds to $OUT/times.tsv.
# Re-running an rl command with the same folder resumes it (the folder's state.ckpt).
# Environment: PY (rft's python), VLLM_PY (the vLLM venv's python: README "vLLM rollouts"),
# RFT_DATA_DIR, OUT (default outputs/remote_experiments), NICE (default 5).
set -euo pipefail

OUT=$(realpath -m "${OUT:-$(dirname "$0")/../outputs/remote_experiments}")
PY=${PY:-python}
VLLM_PY=${VLLM_PY:-python}
NICE=${NICE:-5}
GUIDE_PORT=${GUIDE_PORT:-8137}
JUDGE_PORT=${JUDGE_PORT:-8201}
SFT=$OUT/sft_guide
cd "$(dirname "$0")/.."
mkdir -p "$OUT/servers"

# One thread, one precision for every condition (the CPU has AVX512-BF16: auto would pick
# bf16-mixed; pinned so the local guide's numerics are the same in every run).
COMMON=(task=imdb hardware.torch_threads=1 hardware.precision=bf16-mixed logger=none)
# 30 iterations as issue #27 asks, 8 episodes each (exp4: 8 x 16), and a test evaluation of
# 128 prompts x 2 samples (the default 512 x 2 does not fit this budget). Every RL run starts
# from the SFT guide; its test_init comes from the result store after the first run.
RL=(model.init_from="$SFT" alg.n_iterations=30 alg.rollout_prompts=8 alg.eval_every=1000
    task.n_test_prompts=128 eval.samples_per_prompt=2)
# The served guide: the same SFT policy, token ids both ways, a cache of its own.
REMOTE=(alg.guide.remote.base_url=http://127.0.0.1:$GUIDE_PORT/v1 alg.guide.remote.model=guide
        alg.guide.remote.prompt_format=token_ids alg.guide.remote.cache_dir="$OUT/guide_cache"
        alg.guide.remote.cache_tag=sft_guide alg.guide.remote.timeout_s=600)

# The judge: SmolLM2-135M-Instruct behind vLLM. The default chat rubric gets few parsable
# answers from a 135M model (docs/results.md), so: a few-shot completions prompt of the
# completion alone, the judge's next number read as the score (0-10, greedy, 3 tokens), an
# unparsable answer scored 0 (and counted in remote/judge/unparsable).
JUDGE_TEMPLATE=$'Rate how positive each movie review is, from {min_score} (very negative) to {max_score} (very positive).\n\nReview: I loved this film, the acting was great and the story moving.\nScore: 9\n\nReview: This was awful, boring and badly written.\nScore: 1\n\nReview: The film is set in a small town. It runs two hours.\nScore: 5\n\nReview: A fine cast, but the story drags and the end is a letdown.\nScore: 3\n\nReview: {completion}\nScore:'
JUDGE=(reward=judge reward.base_url=http://127.0.0.1:$JUDGE_PORT/v1 reward.model=judge
       reward.endpoint=completions "reward.template='$JUDGE_TEMPLATE'"
       'reward.score_pattern="^\s*(\d+)"' reward.max_tokens=3 reward.on_unparsable=score
       reward.unparsable_score=0 reward.cache_dir="$OUT/judge_cache")

timed() {  # timed NAME CMD...: run CMD niced, append "name wall_s cpu_s rc" to times.tsv
  local name=$1; shift
  local t0 rc=0
  t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$OUT/.time_$name" nice -n "$NICE" "$@" || rc=$?
  local cpu wall
  cpu=$(awk '{print $1 + $2}' "$OUT/.time_$name" 2>/dev/null | tail -1)
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  printf '%s\t%.0f\t%s\t%s\t%s\n' "$name" "$wall" "${cpu:-?}" "$rc" "$(date -Is)" >> "$OUT/times.tsv"
  return $rc
}

server_cpu() {  # CPU seconds of every process of a server's group so far
  local pgid
  pgid=$(cat "$OUT/servers/$1.pid")
  ps -eo pgid=,times= | awk -v g="$pgid" '$1 == g {s += $2} END {print s + 0}'
}

case "${1:-}" in
sft)
  timed sft_guide "$PY" run.py "${COMMON[@]}" alg=sft alg.max_steps=60 alg.data_frac=0.1 \
    eval.before_training=false task.n_test_prompts=32 hydra.run.dir="$SFT" ;;
rl)
  alg=$2 seed=$3 where=${4:-local}; shift 4 || shift $#
  extra=()
  [ "$where" = remote ] && extra=("${REMOTE[@]}")
  name=${alg}_${where}_s$seed
  [ "$alg" = ppo ] && name=ppo_s$seed
  before=""
  [ "$where" = remote ] && before=$(server_cpu guide)
  timed "$name" "$PY" run.py "${COMMON[@]}" "${RL[@]}" alg="$alg" seed="$seed" "${extra[@]}" \
    "$@" hydra.run.dir="$OUT/guide/$name"
  if [ "$where" = remote ]; then
    echo -e "$name\tserver_cpu_s\t$(echo "$(server_cpu guide) - $before" | bc)" >> "$OUT/times.tsv"
  fi ;;
serve)
  what=$2
  if [ "$what" = guide ]; then model=$SFT/policy port=$GUIDE_PORT
  else model=${JUDGE_MODEL:-$HOME/.cache/rft/smollm2-135m} port=$JUDGE_PORT; fi
  # one OpenMP thread, no core binding; 256 MiB of KV cache (11k tokens of this model: the
  # machine's memory is shared); bf16 as the trainer's autocast; seeded, and the request's
  # sampling fields rather than the model's generation_config
  VLLM_CPU_OMP_THREADS_BIND=nobind OMP_NUM_THREADS=1 \
    nice -n "$NICE" setsid "$VLLM_PY" -m vllm.entrypoints.openai.api_server --model "$model" \
    --served-model-name "$what" --host 127.0.0.1 --port "$port" --dtype bfloat16 \
    --max-model-len 1024 --kv-cache-memory-bytes 268435456 --enforce-eager --generation-config vllm --seed 0 \
    > "$OUT/servers/$what.log" 2>&1 &
  echo $! > "$OUT/servers/$what.pid"
  until curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null; do
    kill -0 "$(cat "$OUT/servers/$what.pid")" 2> /dev/null || { tail -20 "$OUT/servers/$what.log"; exit 1; }
    sleep 5
  done
  echo "$what serving on 127.0.0.1:$port (pid $(cat "$OUT/servers/$what.pid"))" ;;
stop)
  echo -e "server_$2\tcpu_s_total\t$(server_cpu "$2")" >> "$OUT/times.tsv"
  kill -TERM -- "-$(cat "$OUT/servers/$2.pid")" ;;
classifier)
  timed classifier "$PY" run.py "${COMMON[@]}" alg=reward_classifier alg.max_steps=300 \
    hydra.run.dir="$OUT/classifier" ;;
judge_ppo)
  seed=$2; shift 2
  # PPO on the judge from the SmolLM2 model (10 iterations x 16 episodes); every test
  # completion kept (eval.n_samples_table) for scripts/remote_results.py judge
  timed "judge_ppo_s$seed" "$PY" run.py "${COMMON[@]}" alg=ppo seed="$seed" "${JUDGE[@]}" \
    alg.n_iterations=10 alg.rollout_prompts=16 alg.eval_every=1000 task.n_test_prompts=128 \
    eval.samples_per_prompt=2 eval.n_samples_table=100000 "$@" \
    hydra.run.dir="$OUT/judge/ppo_s$seed" ;;
judge_ppo_lp)
  seed=$2; shift 2
  # the same judge and prompt on a 0-9 scale (one token per score), reward = its
  # probability-weighted score over the digits (reward.score_from=logprobs): the stated
  # score of the 135M judge is "2" for most completions (docs/results.md)
  timed "judge_ppo_lp_s$seed" "$PY" run.py "${COMMON[@]}" alg=ppo seed="$seed" "${JUDGE[@]}" \
    reward.score_from=logprobs reward.max_score=9 reward.max_tokens=2 \
    alg.n_iterations=10 alg.rollout_prompts=16 alg.eval_every=1000 task.n_test_prompts=128 \
    eval.samples_per_prompt=2 eval.n_samples_table=100000 "$@" \
    hydra.run.dir="$OUT/judge/ppo_lp_s$seed" ;;
*)
  sed -n '2,17p' "$0"; exit 2 ;;
esac
