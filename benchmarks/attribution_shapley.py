"""Shapley estimation error against the number of model evaluations: our estimators against the `shap` package
(PermutationExplainer, KernelExplainer) and Captum's LLM attribution (ShapleyValueSampling, KernelShap), plus
leave-one-out occlusion against Captum's FeatureAblation LLM wrapper.

Ours: permutation sampling with antithetic pairs (`shapley`), KernelSHAP (`kernel_shap`), Leverage SHAP
(`leverage_shap`: without replacement with whole sizes enumerated when the budget covers them; `_iid`: the
paper's i.i.d. draws; `_kernel_sizes`: the same design with the kernel's size distribution) and
regression-adjusted Monte Carlo (`regression_adjusted_shap`, 5-fold cross-fitting, linear / pairwise /
third-order / boosted-tree surrogates). shap: KernelExplainer, PermutationExplainer, and `shap_auto`, what
`shap.Explainer` picks for this value function (ExactExplainer, 2^F evaluations, up to F = 10;
PermutationExplainer above). Every method counts an evaluation the same way: one coalition's model value (ours
memoize, so repeats are free; the empty and full coalitions count like any other).

    pip install -e ".[bench]"      # captum + shap, for this benchmark only (not core dependencies)
    python benchmarks/attribution_shapley.py [--prompts 4] [--sizes 8,7] [--seeds 6] [--real-cap 100] [--quick]
    python benchmarks/attribution_shapley.py --sizes 12,11 --skip-real --tables T.json --out OUT   # large F

Problem (the same for every method): the default model (smollm2-135m, fp32), short prompts cut from Lee news
sentences (english-prose corpus; `build_prompts`) of F <= 12 words (default 8 and 7: the shared 2-core
machine this was written on was heavily loaded), target = the sentence's true next word
(teacher-forced token ids, identical for every method). Players are the words (granularity "word"); the value
of a coalition S is the sequence log-probability of the target with the tokens of every word outside S
replaced by the pad token (workbench.attribution.perturb, baseline "pad"); Captum gets the same thing through
TextTokenInput(baselines=pad id) + a feature_mask grouping tokens into words, shap through an Independent
masker over the F keep-indicators (background: all removed). Exact Shapley values enumerate all 2^F coalitions
(`exact_shapley`), whose values are computed once on the real model.

Phases, all in one run (after the exact values):
1. error curves. The 2^F values ARE the value function, so every sampler is run against a table of them
   (`TableValue`) for many seeds and budgets: exactly the value function each method would query, without
   re-running the model per seed. Error = relative L2 error ||phi_hat - phi|| / ||phi|| per prompt, averaged
   over prompts and seeds. Evaluations = inputs each method asks its model to score: ours memoize (each distinct
   coalition once: `TableValue.distinct`); shap and Captum score every row they generate (`TableValue.rows`;
   their distinct counts are recorded too). "Evaluations to reach" an error is interpolated log-log between the
   two budgets that bracket it on the mean curve.
2. real runs on the model (wall time). Each method runs on the real model for every prompt (seed 0,
   interleaved, alternating order) at one probe budget: the first grid budget whose mean error is <= 0.1, or,
   if that needs more than --real-cap evaluations, the largest budget within the cap (`probe_budget`). Ours via
   `attribute(...)`; shap with a value function that scores each call's rows with a fresh PerturbationValue
   (batched, KV reuse: the same engine as ours, no memo across calls); Captum through LLMAttribution with
   forward_in_tokens=False (one forward per evaluation, its fastest mode; it scores one input per forward).
   Model forward passes are counted by wrapping the HF model's forward (`ForwardCounter`). The real result is
   checked against the table run of the same seed (max abs difference recorded; for the ridge surrogates of
   regression_adjusted_shap, pairwise and third order, it is not 0 on multi-token targets: the real method fits
   each target token's game with its own penalty and sums, the table run fits the summed game). Wall time to reach an error
   = evaluations to reach it x the method's measured seconds per evaluation (total seconds / total
   evaluations of its real runs, overheads included): derived, not timed at every budget.
3. occlusion: ours (batched, KV-cache reuse) vs Captum FeatureAblation (forward_in_tokens False and True, the
   latter Captum's default), interleaved per prompt, median of --reps timings; attributions compared.

Simplifications: the explained quantity is the target's sequence log-probability (sum over target tokens; with
one-token targets, the token log-probability); shap's KernelExplainer runs with l1_reg=False (pure KernelSHAP;
with F <= 10 its default num_features(10) keeps every feature anyway); at nsamples >= 2^F - 2 shap's
KernelExplainer enumerates every coalition (exact). With few words, memoizing samplers (ours) never run more
than 2^F distinct coalitions, so their evaluation counts saturate there while their error keeps falling with
more permutations; exact enumeration itself costs 2^F evaluations (256 at F = 8). Speeds are ratios measured in this run on a shared CPU.
Writes benchmarks/results/attribution_shapley.json and .md.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLDS = (0.1, 0.05)
GRID = (24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


# ---- pure pieces (tested in tests/benchmarks) -------------------------------------------------------------
def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    """||estimate - exact||_2 / ||exact||_2 (exact must not be all zero)."""
    estimate, exact = np.asarray(estimate, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if estimate.shape != exact.shape:
        raise ValueError(f"estimate and exact must have the same shape, got {estimate.shape} and {exact.shape}")
    norm = float(np.linalg.norm(exact))
    if norm == 0.0:
        raise ValueError("exact Shapley values are all zero: the relative error is undefined")
    return float(np.linalg.norm(estimate - exact)) / norm


def mask_index(masks: np.ndarray) -> np.ndarray:
    """Keep-masks [M, F] -> table index sum_i mask[i] 2^i."""
    masks = np.asarray(masks)
    return (masks.astype(np.int64) * (1 << np.arange(masks.shape[1], dtype=np.int64))).sum(1)


def all_masks(f: int) -> np.ndarray:
    """[2^F, F] keep-masks in table order (row k is the binary expansion of k, bit i = player i)."""
    return ((np.arange(2 ** f)[:, None] >> np.arange(f)[None, :]) & 1).astype(bool)


def exact_shapley(table: np.ndarray, f: int) -> np.ndarray:
    """Exact Shapley values [F] of v(S) = table[index(S)] by enumerating every coalition:
    phi_i = sum over S without i of |S|! (F - |S| - 1)! / F! (v(S + i) - v(S))."""
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (2 ** f,):
        raise ValueError(f"table must have 2^F = {2 ** f} values, got shape {table.shape}")
    masks = all_masks(f)
    sizes = masks.sum(1)
    weight = np.array([math.factorial(s) * math.factorial(f - s - 1) / math.factorial(f) if s < f else 0.0
                       for s in range(f + 1)])
    phi = np.zeros(f)
    for i in range(f):
        without = ~masks[:, i]
        idx = np.flatnonzero(without)
        phi[i] = float((weight[sizes[idx]] * (table[idx + (1 << i)] - table[idx])).sum())
    return phi


class TableValue:
    """A value function backed by a table of all 2^F coalition values, counting what is asked of it.

    Called with keep-masks [M, F] (bool or 0/1 numbers; > 0.5 = kept) it returns [M] values, or [M, 1] with
    `column=True` (the shape our samplers expect). rows: rows requested over all calls; distinct: distinct
    coalitions requested (what a memoizing value function would run); calls: number of calls."""

    def __init__(self, table: np.ndarray, f: int, column: bool = False):
        self.table = np.asarray(table, dtype=np.float64)
        if self.table.shape != (2 ** f,):
            raise ValueError(f"table must have 2^F = {2 ** f} values, got shape {self.table.shape}")
        self.f = f
        self.column = column
        self.rows = 0
        self.calls = 0
        self.seen: set[int] = set()

    @property
    def distinct(self) -> int:
        return len(self.seen)

    def __call__(self, masks) -> np.ndarray:
        if isinstance(masks, torch.Tensor):
            masks = masks.detach().cpu().numpy()
        masks = np.asarray(masks).reshape(-1, self.f) > 0.5
        idx = mask_index(masks)
        self.rows += len(idx)
        self.calls += 1
        self.seen.update(int(i) for i in idx)
        out = self.table[idx]
        return out[:, None] if self.column else out


def evaluations_to_reach(points: list[tuple[float, float]], threshold: float) -> float | None:
    """Evaluations at which a (evaluations, error) curve first reaches `threshold`, interpolated log-log
    between the last point above and the first point at or below it; None if it never does."""
    points = sorted(points)
    for k, (evals, err) in enumerate(points):
        if err <= threshold:
            if k == 0:
                return float(evals)
            e0, r0 = points[k - 1]
            if r0 <= threshold or err <= 0 or evals == e0:
                return float(evals)
            t = (math.log(r0) - math.log(threshold)) / (math.log(r0) - math.log(err))
            return float(math.exp(math.log(e0) + t * (math.log(evals) - math.log(e0))))
    return None


class ForwardCounter:
    """Counts forward calls of a torch module and the batch rows they score: `with ForwardCounter(lm.model) as c:`.

    The module's `forward` is wrapped on the instance (not a hook), so direct `model.forward(...)` calls, as
    Captum's LLM wrappers make them, are counted too."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.calls = 0
        self.rows = 0

    def __enter__(self) -> Self:
        inner = self.module.forward

        def forward(*args, **kwargs):
            self.calls += 1
            x = kwargs.get("input_ids")
            x = kwargs.get("inputs_embeds") if x is None else x
            x = args[0] if x is None and args else x
            self.rows += int(x.shape[0]) if isinstance(x, torch.Tensor) else 1
            return inner(*args, **kwargs)

        self.module.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        del self.module.forward  # back to the class's forward


# ---- samplers on a value function (keep-masks -> values) ---------------------------------------------------
def ours_shapley(value: TableValue, f: int, budget: int, seed: int) -> np.ndarray:
    from workbench.attribution.methods.shapley import permutation_shapley

    value.column = True
    est, _ = permutation_shapley(value, f, budget, np.random.default_rng(seed), antithetic=True)
    return est[0]


def ours_kernel(value: TableValue, f: int, budget: int, seed: int) -> np.ndarray:
    from workbench.attribution.methods.kernel_shap import kernel_shap

    value.column = True
    est, _, _ = kernel_shap(value, f, budget, np.random.default_rng(seed), paired=True, bootstrap=2)
    return est[0]


def ours_leverage(value: TableValue, f: int, budget: int, seed: int, **options) -> np.ndarray:
    from workbench.attribution.methods.leverage_shap import leverage_shap

    value.column = True
    est, _, _ = leverage_shap(value, f, budget, np.random.default_rng(seed), bootstrap=2, **options)
    return est[0]


def ours_regression(value: TableValue, f: int, budget: int, seed: int, **options) -> np.ndarray:
    """Regression-adjusted MC; a budget below the method's minimum for F is raised to it (the evaluations
    recorded are the ones made)."""
    from workbench.attribution.methods.regression_adjusted_shap import (
        minimum_samples,
        regression_adjusted_shap,
    )

    value.column = True
    budget = max(budget, minimum_samples(f, options.get("folds", 2)))
    return regression_adjusted_shap(value, f, budget, np.random.default_rng(seed), **options)[0]


# our registered methods: benchmark name -> (registered name, budget option, other options)
OURS = {
    "ours_shapley": ("shapley", "permutations", {}),
    "ours_kernel_shap": ("kernel_shap", "samples", {}),
    "ours_leverage_shap": ("leverage_shap", "samples", {}),
    "ours_leverage_shap_iid": ("leverage_shap", "samples", {"without_replacement": False}),
    "ours_leverage_kernel_sizes": ("leverage_shap", "samples", {"sizes": "kernel"}),
    "ours_regression_linear": ("regression_adjusted_shap", "samples", {"surrogate": "linear", "folds": 5}),
    "ours_regression_pairwise": ("regression_adjusted_shap", "samples", {"surrogate": "pairwise", "folds": 5}),
    "ours_regression_third_order": ("regression_adjusted_shap", "samples", {"surrogate": "third_order", "folds": 5}),
    "ours_regression_trees": ("regression_adjusted_shap", "samples", {"surrogate": "trees", "folds": 5}),
}


def _leverage_grid(f: int) -> list[int]:
    return sorted({g for g in GRID + (1536, 2048, 3072) if 2 * (f - 1) <= g < 2 ** f - 2} | {2 ** f - 2})


def shap_permutation(value: Callable, f: int, budget: int, seed: int) -> np.ndarray:
    import shap

    masker = shap.maskers.Independent(np.zeros((1, f)), max_samples=1)
    explainer = shap.PermutationExplainer(lambda x: value(x), masker, seed=seed)
    budget = max(budget, 2 * f + 1)  # its minimum (a grid shared by several F may go below it)
    return np.asarray(explainer(np.ones((1, f)), max_evals=budget, silent=True).values[0], dtype=np.float64)


def shap_auto(value: Callable, f: int, budget: int, seed: int) -> np.ndarray:
    """What `shap.Explainer` picks for a black-box function with an Independent masker: ExactExplainer up to 10
    features (all 2^F coalitions, whatever the budget), PermutationExplainer above."""
    import shap

    masker = shap.maskers.Independent(np.zeros((1, f)), max_samples=1)
    explainer = shap.Explainer(lambda x: value(x), masker, seed=seed)
    budget = max(budget, 2 ** f) if f <= 10 else max(budget, 2 * f + 1)  # the explainers' minimums
    return np.asarray(explainer(np.ones((1, f)), max_evals=budget, silent=True).values[0], dtype=np.float64)


def shap_kernel(value: Callable, f: int, budget: int, seed: int) -> np.ndarray:
    import shap

    np.random.seed(seed)
    explainer = shap.KernelExplainer(lambda x: value(x), np.zeros((1, f)))
    return np.asarray(explainer.shap_values(np.ones((1, f)), nsamples=budget, l1_reg=False, silent=True),
                      dtype=np.float64).reshape(-1)[:f]


def _captum_func(value: Callable) -> Callable:
    return lambda x: torch.as_tensor(np.asarray(value(x)), dtype=torch.float64).reshape(-1)


def captum_svs(value: Callable, f: int, budget: int, seed: int) -> np.ndarray:
    from captum.attr import ShapleyValueSampling

    torch.manual_seed(seed)
    attr = ShapleyValueSampling(_captum_func(value)).attribute(
        torch.ones(1, f, dtype=torch.float64), baselines=0.0, n_samples=budget, perturbations_per_eval=64,
        show_progress=False)
    return attr.reshape(-1).double().numpy()


def captum_kernel(value: Callable, f: int, budget: int, seed: int) -> np.ndarray:
    from captum.attr import KernelShap

    torch.manual_seed(seed)
    attr = KernelShap(_captum_func(value)).attribute(
        torch.ones(1, f, dtype=torch.float64), baselines=0.0, n_samples=budget, perturbations_per_eval=64,
        show_progress=False)
    return attr.reshape(-1).double().numpy()


METHODS = {
    # name: (sampler, budget parameter, grid of budgets for F features, library?)
    "ours_shapley": (ours_shapley, "permutations", lambda f: [4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256],
                     False),
    "ours_kernel_shap": (ours_kernel, "samples",
                         lambda f: sorted({max(2 * (f - 1), 16)} | {g for g in GRID if g >= 2 * (f - 1)}), False),
    "ours_leverage_shap": (ours_leverage, "samples", _leverage_grid, False),
    "ours_leverage_shap_iid": (lambda v, f, b, s: ours_leverage(v, f, b, s, without_replacement=False), "samples",
                               lambda f: [g for g in _leverage_grid(f) if g < 2 ** f - 2], False),
    "ours_leverage_kernel_sizes": (lambda v, f, b, s: ours_leverage(v, f, b, s, sizes="kernel"), "samples",
                                   _leverage_grid, False),
    "ours_regression_linear": (lambda v, f, b, s: ours_regression(v, f, b, s, surrogate="linear", folds=5),
                               "samples", _leverage_grid, False),
    "ours_regression_pairwise": (lambda v, f, b, s: ours_regression(v, f, b, s, surrogate="pairwise", folds=5),
                                 "samples", _leverage_grid, False),
    "ours_regression_third_order": (lambda v, f, b, s: ours_regression(v, f, b, s, surrogate="third_order", folds=5),
                                    "samples", _leverage_grid, False),
    "ours_regression_trees": (lambda v, f, b, s: ours_regression(v, f, b, s, surrogate="trees", folds=5),
                              "samples", _leverage_grid, False),
    "shap_permutation": (shap_permutation, "max_evals", lambda f: [g for g in GRID if g >= 2 * f + 1] + [1536, 2048],
                         True),
    "shap_auto": (shap_auto, "max_evals", lambda f: [g for g in GRID if g >= 2 * f + 1] + [1536, 2048], True),
    "shap_kernel": (shap_kernel, "nsamples", lambda f: [g for g in GRID if g < 2 ** f - 2] + [2 ** f - 2], True),
    "captum_shapley_sampling": (captum_svs, "n_samples", lambda f: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192],
                                True),
    "captum_kernel_shap": (captum_kernel, "n_samples", lambda f: [g for g in GRID if g >= f + 1] + [1536, 2048],
                           True),
}


# ---- prompts ----------------------------------------------------------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` (whitespace collapsed, split after . ! or ?)."""
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split()))]


def build_prompts(count: int, sizes: tuple[int, ...], seed: int = 0) -> list[dict]:
    """`count` prompts cut from Lee news sentences: the first F words (F cycling through `sizes`) and the
    sentence's next word (punctuation stripped, with its leading space) as the target; chosen with `seed`."""
    from workbench.assets import load_corpus

    rng = random.Random(seed)
    sentences = []
    for text in load_corpus("english-prose", sources=["lee"])["text"]:
        sentences += split_sentences(text)
    rng.shuffle(sentences)
    prompts, seen = [], set()
    for sentence in sentences:
        f = sizes[len(prompts) % len(sizes)]
        words = sentence.split()
        if len(words) <= f:
            continue
        nxt = words[f].strip(".,;:!?\"'()[]")
        if not re.fullmatch(r"[A-Za-z][A-Za-z'-]*", nxt) or not all(re.search(r"[A-Za-z0-9]", w) for w in words[:f]):
            continue
        prompt = " ".join(words[:f])
        if prompt in seen:
            continue
        seen.add(prompt)
        prompts.append({"prompt": prompt, "target": " " + nxt, "words": f})
        if len(prompts) == count:
            return prompts
    raise ValueError(f"--prompts: found only {len(prompts)} suitable sentences, asked for {count}")


# ---- the real model ---------------------------------------------------------------------------------------
def setup(lm, item: dict) -> dict:
    """Problem, target ids, Captum input and feature mask of one prompt (word units, pad baseline)."""
    from workbench.attribution import attribute
    from workbench.attribution.perturb import pad_id
    from workbench.attribution.rebuild import problem_from

    a = attribute(lm, item["prompt"], item["target"], method="occlusion", granularity="word", progress=False)
    problem = problem_from(lm, a)
    fmask = torch.zeros(1, problem.n_tokens, dtype=torch.long)
    for u, unit in enumerate(problem.units):
        fmask[0, unit.token_indices] = u
    first = [unit.token_indices[0] for unit in problem.units]
    return {"problem": problem, "ids": list(problem.target.continuations[0]), "pad": pad_id(lm), "fmask": fmask,
            "first": first, "f": problem.n_units}


def table_key(model: str, item: dict) -> str:
    """Cache key of a prompt's coalition table: model, prompt and target text."""
    return json.dumps([model, item["prompt"], item["target"]])


def load_tables(path: str | None) -> dict:
    """The --tables cache ({table_key: {"table", "seconds", "forward_passes"}}), empty if absent."""
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else {}


def model_table(lm, ctx: dict, batch_size: int) -> tuple[np.ndarray, float, int]:
    """All 2^F coalition values on the real model -> (table, seconds, forward passes)."""
    from workbench.attribution import PerturbationValue

    value = PerturbationValue(ctx["problem"], "pad", batch_size, progress=True)
    start = time.perf_counter()
    with ForwardCounter(lm.model) as counter:
        table = value(all_masks(ctx["f"])).sum(1)
    return table, time.perf_counter() - start, counter.calls


def run_real(lm, tok, ctx: dict, item: dict, method: str, budget: int, seed: int, batch_size: int) -> dict:
    """One real-model run of `method` at `budget` -> estimate, evaluations (rows scored), forwards, seconds."""
    from workbench.attribution import PerturbationValue, attribute

    f = ctx["f"]
    with ForwardCounter(lm.model) as counter:
        start = time.perf_counter()
        if method.startswith("ours"):
            name, key, options = OURS[method]
            if name == "regression_adjusted_shap":  # as in ours_regression
                from workbench.attribution.methods.regression_adjusted_shap import (
                    minimum_samples,
                )
                budget = max(budget, minimum_samples(f, options["folds"]))
            a = attribute(lm, item["prompt"], ctx["ids"], method=name, granularity="word", progress=False,
                          batch_size=batch_size, seed=seed, **{key: budget}, **options)
            est, evals = a.matrix.sum(0), a.cost.evaluations
        elif method.startswith("shap"):
            rows = [0]

            def value(x):
                rows[0] += len(x)
                fresh = PerturbationValue(ctx["problem"], "pad", batch_size)
                return fresh(np.asarray(x) > 0.5).sum(1)

            est = METHODS[method][0](value, f, budget, seed)
            evals = rows[0]
        else:
            from captum.attr import (
                KernelShap,
                LLMAttribution,
                ShapleyValueSampling,
                TextTokenInput,
            )

            algo = ShapleyValueSampling if method == "captum_shapley_sampling" else KernelShap
            wrapper = LLMAttribution(algo(lm.model), tok)
            inp = TextTokenInput(item["prompt"], tok, baselines=ctx["pad"])
            torch.manual_seed(seed)
            res = wrapper.attribute(inp, target=torch.tensor(ctx["ids"]), feature_mask=ctx["fmask"],
                                    n_samples=budget, forward_in_tokens=False, show_progress=False)
            est = res.seq_attr.double().numpy()[ctx["first"]]
            evals = None
        seconds = time.perf_counter() - start
    return {"estimate": np.asarray(est, dtype=np.float64), "evaluations": evals if evals is not None
            else counter.calls, "forward_passes": counter.calls, "seconds": seconds}


def captum_occlusion(lm, tok, ctx: dict, item: dict, in_tokens: bool) -> tuple[np.ndarray, float, int]:
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    with ForwardCounter(lm.model) as counter:
        start = time.perf_counter()
        wrapper = LLMAttribution(FeatureAblation(lm.model), tok)
        inp = TextTokenInput(item["prompt"], tok, baselines=ctx["pad"])
        res = wrapper.attribute(inp, target=torch.tensor(ctx["ids"]), feature_mask=ctx["fmask"],
                                forward_in_tokens=in_tokens)
        seconds = time.perf_counter() - start
    return res.seq_attr.double().numpy()[ctx["first"]], seconds, counter.calls


def ours_occlusion(lm, ctx: dict, item: dict, batch_size: int) -> tuple[np.ndarray, float, int]:
    from workbench.attribution import attribute

    with ForwardCounter(lm.model) as counter:
        start = time.perf_counter()
        a = attribute(lm, item["prompt"], ctx["ids"], method="occlusion", granularity="word", progress=False,
                      batch_size=batch_size)
        seconds = time.perf_counter() - start
    return a.matrix.sum(0), seconds, counter.calls


# ---- the benchmark ----------------------------------------------------------------------------------------
def curves(tables: list[np.ndarray], exacts: list[np.ndarray], sizes: list[int], seeds: int, bar,
           methods: list[str] | None = None) -> dict:
    """Error curves of every method on the tables: {method: [{budget, evaluations, distinct, error, ...}]}."""
    out = {}
    for method in methods or list(METHODS):
        sampler, param, grid, library = METHODS[method]
        budgets = sorted(set().union(*[grid(f) for f in sizes]))
        points = []
        for budget in budgets:
            errs, evals, distinct, per_prompt = [], [], [], []
            for table, exact, f in zip(tables, exacts, sizes):
                prompt_errs = []
                for seed in range(seeds):
                    value = TableValue(table, f)
                    est = sampler(value, f, budget, seed)
                    err = relative_error(est, exact)
                    prompt_errs.append(err)
                    evals.append(value.rows if library else value.distinct)
                    distinct.append(value.distinct)
                errs += prompt_errs
                per_prompt.append(float(np.mean(prompt_errs)))
                bar.update(1)
            points.append({param: budget, "budget": budget, "evaluations": float(np.mean(evals)),
                           "distinct_coalitions": float(np.mean(distinct)), "error": float(np.mean(errs)),
                           "error_median": float(np.median(errs)), "error_per_prompt": per_prompt})
        out[method] = points
    return out


def probe_budget(points: list[dict], cap: float) -> int:
    """The budget a real-model run uses: the first grid budget whose mean error is <= the loosest threshold,
    or, if that needs more than `cap` evaluations (or is never reached), the largest budget within `cap`."""
    points = sorted(points, key=lambda p: p["evaluations"])
    hit = next((p for p in points if p["error"] <= max(THRESHOLDS)), None)
    if hit is not None and hit["evaluations"] <= cap:
        return hit["budget"]
    within = [p for p in points if p["evaluations"] <= cap]
    return (within[-1] if within else points[0])["budget"]


def reach_table(curve: dict) -> dict:
    """{method: {threshold: evaluations to reach it (interpolated), and the first grid budget reaching it}}."""
    out = {}
    for method, points in curve.items():
        row = {}
        for t in THRESHOLDS:
            pts = [(p["evaluations"], p["error"]) for p in points]
            hit = next((p for p in sorted(points, key=lambda p: p["evaluations"]) if p["error"] <= t), None)
            row[str(t)] = {"evaluations": evaluations_to_reach(pts, t),
                           "grid_budget": None if hit is None else hit["budget"],
                           "grid_evaluations": None if hit is None else hit["evaluations"]}
        out[method] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=4, help="number of prompts (default 4)")
    parser.add_argument("--sizes", default="8,7", help="words per prompt, cycled (each <= 12)")
    parser.add_argument("--seeds", type=int, default=6, help="sampler seeds per budget on the tables")
    parser.add_argument("--reps", type=int, default=3, help="timings per prompt for the occlusion comparison")
    parser.add_argument("--real-cap", type=float, default=100,
                        help="most evaluations per real-model run (default 100)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 prompts of 6-7 words, 3 seeds, 1 rep")
    parser.add_argument("--out", default=str(RESULTS / "attribution_shapley"))
    parser.add_argument("--tables", default=None,
                        help="JSON cache of the 2^F coalition values per prompt: read if present, extended and "
                        "written as tables are computed (so a run can be resumed or redone without the model)")
    parser.add_argument("--tables-only", action="store_true", help="stop after computing the tables")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--skip-real", action="store_true",
                        help="error curves on the tables only: no real-model runs (no wall times) and no occlusion "
                        "timing (for large F, where the tables themselves are the expensive part)")
    args = parser.parse_args(argv)
    try:
        import captum  # noqa: F401
        import shap  # noqa: F401
    except ImportError as exc:
        print(f"this benchmark needs captum and shap ({exc}): pip install -e \".[bench]\" "
              "(or pip install captum shap)", file=sys.stderr)
        return 2
    sizes = (7, 6) if args.quick else tuple(int(s) for s in args.sizes.split(","))
    if args.quick:
        args.prompts, args.seeds, args.reps = 2, 3, 1
    if args.prompts < 1 or args.seeds < 1 or args.reps < 1 or any(not 2 <= s <= 12 for s in sizes):
        parser.error("--prompts, --seeds, --reps must be >= 1 and --sizes in [2, 12]")
    methods = list(METHODS) if args.methods is None else args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; known: {', '.join(METHODS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    from workbench.assets import resolve_model
    from workbench.models import LM

    load_before = os.getloadavg()
    lm = LM.load(args.model)
    tok = AutoTokenizer.from_pretrained(resolve_model(args.model))
    items = build_prompts(args.prompts, sizes)
    ctxs = [setup(lm, item) for item in items]
    for item, ctx in zip(items, ctxs):
        item["target_ids"] = ctx["ids"]
        item["units"] = [u.text for u in ctx["problem"].units]

    # phase 0: exact values on the model
    tables, exacts, exact_cost = [], [], []
    cache = load_tables(args.tables)
    for item, ctx in zip(tqdm(items, desc="exact (2^F coalitions)"), ctxs):
        key = table_key(args.model, item)
        if key in cache:
            table, seconds, forwards = np.asarray(cache[key]["table"]), cache[key]["seconds"], cache[key]["forward_passes"]
        else:
            table, seconds, forwards = model_table(lm, ctx, args.batch_size)
            if args.tables:
                cache[key] = {"table": table.tolist(), "seconds": seconds, "forward_passes": forwards}
                Path(args.tables).write_text(json.dumps(cache))
        tables.append(table)
        exacts.append(exact_shapley(table, ctx["f"]))
        exact_cost.append({"coalitions": 2 ** ctx["f"], "seconds": seconds, "forward_passes": forwards})
        item["exact_shapley"] = exacts[-1].tolist()
    sizes_f = [ctx["f"] for ctx in ctxs]
    if args.tables_only:
        return 0

    # phase 1: error curves on the tables
    total = sum(len(set().union(*[METHODS[m][2](f) for f in sizes_f])) for m in methods) * len(items)
    with tqdm(total=total, desc="error curves (tables)") as bar:
        curve = curves(tables, exacts, sizes_f, args.seeds, bar, methods)
    reach = reach_table(curve)

    real: dict[str, dict] = {m: {"budget": None, "runs": [], "seconds_per_evaluation": None} for m in methods}
    occ, occ_summary = [], None
    if not args.skip_real:
        # phase 2: real-model runs (wall time per evaluation) at each method's probe budget
        probes = {m: probe_budget(curve[m], args.real_cap) for m in methods}
        real = {m: {"budget": b, "runs": []} for m, b in probes.items()}
        order = list(methods)
        with tqdm(total=len(order) * len(items), desc="real-model runs") as bar:
            for k, (item, ctx, table, exact) in enumerate(zip(items, ctxs, tables, exacts)):
                for method in (order if k % 2 == 0 else order[::-1]):  # interleaved, alternating order
                    budget = probes[method]
                    r = run_real(lm, tok, ctx, item, method, budget, 0, args.batch_size)
                    ref = METHODS[method][0](TableValue(table, ctx["f"]), ctx["f"], budget, 0)
                    real[method]["runs"].append({
                        "error": relative_error(r["estimate"], exact),
                        "max_abs_diff_vs_table": float(np.max(np.abs(r["estimate"] - ref))),
                        "evaluations": int(r["evaluations"]), "forward_passes": r["forward_passes"],
                        "seconds": r["seconds"]})
                    bar.update(1)
        for rec in real.values():
            runs = rec["runs"]
            rec.update({key: float(np.mean([x[key] for x in runs])) for key in
                        ("error", "evaluations", "forward_passes", "seconds")})
            rec["seconds_per_evaluation"] = sum(x["seconds"] for x in runs) / sum(x["evaluations"] for x in runs)
            rec["max_abs_diff_vs_table"] = float(max(x["max_abs_diff_vs_table"] for x in runs))

        # phase 3: occlusion vs Captum FeatureAblation (interleaved, medians)
        occ = []
        for item, ctx in zip(tqdm(items, desc="occlusion timing"), ctxs):
            ours_occlusion(lm, ctx, item, args.batch_size)  # warm-up
            times = {"ours": [], "captum_seq": [], "captum_tokens": []}
            for _ in range(args.reps):
                ours, t, fw_ours = ours_occlusion(lm, ctx, item, args.batch_size)
                times["ours"].append(t)
                seq, t, fw_seq = captum_occlusion(lm, tok, ctx, item, in_tokens=False)
                times["captum_seq"].append(t)
                tokens, t, fw_tok = captum_occlusion(lm, tok, ctx, item, in_tokens=True)
                times["captum_tokens"].append(t)
            occ.append({"words": ctx["f"], **{f"{k}_seconds": statistics.median(v) for k, v in times.items()},
                        "forward_passes": {"ours": fw_ours, "captum_seq": fw_seq, "captum_tokens": fw_tok},
                        "max_abs_diff": {"captum_seq": float(np.max(np.abs(ours - seq))),
                                         "captum_tokens": float(np.max(np.abs(ours - tokens)))}})
        occ_summary = {
            "ours_seconds": sum(o["ours_seconds"] for o in occ),
            "captum_seq_seconds": sum(o["captum_seq_seconds"] for o in occ),
            "captum_tokens_seconds": sum(o["captum_tokens_seconds"] for o in occ),
        }
        occ_summary["speedup_vs_captum_seq"] = occ_summary["captum_seq_seconds"] / occ_summary["ours_seconds"]
        occ_summary["speedup_vs_captum_tokens"] = occ_summary["captum_tokens_seconds"] / occ_summary["ours_seconds"]

    summary = summarize(reach, real)
    summary["occlusion"] = occ_summary
    summary["structure"] = structure_summary(tables, sizes_f, reach)
    result = {
        "benchmark": "attribution_shapley", "command": "python benchmarks/attribution_shapley.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model, "threads": args.threads, "seeds": args.seeds, "reps": args.reps,
        "batch_size": args.batch_size, "thresholds": list(THRESHOLDS),
        "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "prompts": items, "exact_cost": exact_cost, "curves": curve, "reach": reach, "real_runs": real,
        "occlusion": occ, "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


def unexplained(table: np.ndarray, f: int) -> dict:
    """How far a game is from additive / pairwise: the fraction of the Shapley-kernel-weighted variance of v over
    the proper coalitions (KernelSHAP's objective) that the best fit with an intercept and main effects ("linear"),
    also every pairwise product ("pairwise"), also every triple product ("third_order") leaves unexplained.
    0 = the game is in that class. (Paired sampling already makes KernelSHAP-type estimators exact on games of
    order <= 2, so the third-order column is what limits them.)"""
    masks = all_masks(f)
    size = masks.sum(1)
    keep = (size > 0) & (size < f)
    z, y = masks[keep].astype(float), np.asarray(table, dtype=np.float64)[keep]
    w = np.array([(f - 1) / (math.comb(f, int(k)) * k * (f - k)) for k in size[keep]])
    w = w / w.sum()
    total = float((w * (y - (w * y).sum()) ** 2).sum())
    i, j = np.triu_indices(f, 1)
    a, b, c = np.array(list(itertools.combinations(range(f), 3))).T
    linear = np.c_[np.ones(len(z)), z]
    pairwise = np.c_[linear, z[:, i] * z[:, j]]
    out = {}
    for name, x in (("linear", linear), ("pairwise", pairwise), ("third_order", np.c_[pairwise, z[:, a] * z[:, b] * z[:, c]])):
        coef = np.linalg.lstsq(x * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        out[name] = float((w * (y - x @ coef) ** 2).sum()) / total if total > 0 else 0.0
    return out


def structure_summary(tables: list[np.ndarray], sizes: list[int], reach: dict) -> dict:
    """Per prompt: how far the game is from additive / pairwise (`unexplained`). And the ceiling on the
    evaluations ratio vs shap's KernelExplainer: no estimator identifies F values of a general (even additive) game
    from fewer than F + 1 evaluations (v(empty) and F more), so ratio <= shap's evaluations / (F + 1)."""
    per = [{"words": f, **{f"unexplained_{k}": v for k, v in unexplained(t, f).items()}} for t, f in zip(tables, sizes)]
    need = float(np.mean(sizes)) + 1
    ceiling = {}
    for t in THRESHOLDS:
        shap_evals = reach.get("shap_kernel", {}).get(str(t), {}).get("evaluations")
        ceiling[str(t)] = {"shap_kernel_evaluations": shap_evals, "fewest_possible": need,
                           "ratio_ceiling": None if shap_evals is None else shap_evals / need}
    return {"per_prompt": per, "ratio_ceiling_vs_shap_kernel": ceiling}


def summarize(reach: dict, real: dict) -> dict:
    """Evaluations to reach each threshold, wall time = evaluations x the method's measured seconds per
    evaluation (real runs), and the ratios library / ours (best method of each side)."""
    out: dict = {"at_threshold": {}, "ratios": {}}
    for t in THRESHOLDS:
        rows = {}
        for method, r in reach.items():
            evals = r[str(t)]["evaluations"]
            spe = real[method]["seconds_per_evaluation"]
            rows[method] = {"evaluations": evals, "grid_budget": r[str(t)]["grid_budget"],
                            "seconds_per_evaluation": spe,
                            "seconds": None if evals is None or spe is None else evals * spe}
        out["at_threshold"][str(t)] = rows

        ratios = {}
        for key in ("evaluations", "seconds"):
            ours_m, ours_v = _best(rows, "ours", key)
            for lib in ("shap", "captum"):
                lib_m, lib_v = _best(rows, lib, key)
                ratios[f"{lib}_over_ours_{key}"] = {"ours": ours_m, lib: lib_m,
                                                   "ratio": None if not ours_v or lib_v is None else lib_v / ours_v}
        out["ratios"][str(t)] = ratios
    return out


def _best(rows: dict, prefix: str, key: str) -> tuple[str | None, float | None]:
    """The method named `prefix*` with the smallest rows[method][key] (None values skipped)."""
    cands = [(v[key], m) for m, v in rows.items() if m.startswith(prefix) and v[key] is not None]
    return (min(cands)[1], min(cands)[0]) if cands else (None, None)


def _fmt(x, spec=".3g") -> str:
    return "-" if x is None else format(x, spec)


def _real_lines(result: dict) -> list[str]:
    lines = ["## Real-model runs (seed 0, every prompt, interleaved)", "",
              ("| method | budget | evaluations | forward passes | s / prompt | s / evaluation | error | "
              "max diff vs table |"), "|---|---|---|---|---|---|---|---|"]
    for m, r in result["real_runs"].items():
        lines.append(f"| {m} | {r['budget']} | {r['evaluations']:.0f} | {r['forward_passes']:.1f} | "
                     f"{r['seconds']:.2f} | {1000 * r['seconds_per_evaluation']:.1f} ms | {r['error']:.3f} | "
                     f"{r['max_abs_diff_vs_table']:.1e} |")
    lines.append("")
    return lines


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [(f"# Shapley estimation error vs model evaluations ({result['model']}, {len(result['prompts'])} prompts "
             f"of {sorted({p['words'] for p in result['prompts']})} words, {result['seeds']} seeds)"), "",
             (f"loadavg before/after: {[round(x, 2) for x in result['loadavg_before']]} / "
             f"{[round(x, 2) for x in result['loadavg_after']]}; threads {result['threads']}"), ""]
    if not any(r["runs"] for r in result["real_runs"].values()):
        lines += ["(--skip-real: error curves on the tables only; no wall times)", ""]
    else:
        lines += _real_lines(result)
    for t in result["thresholds"]:
        lines += [f"## Relative L2 error <= {t} (mean over prompts and seeds)", "",
                  ("| method | evaluations (interpolated) | first grid budget reaching it | wall time / prompt "
                  "(evaluations x s/evaluation) |"), "|---|---|---|---|"]
        for m, v in s["at_threshold"][str(t)].items():
            lines.append(f"| {m} | {_fmt(v['evaluations'], '.0f')} | {_fmt(v['grid_budget'], 'd')} | "
                         f"{_fmt(v['seconds'], '.2f')} |")
        lines.append("")
        for name, r in s["ratios"][str(t)].items():
            who = ", ".join(f"{k}={v}" for k, v in r.items() if k != "ratio")
            lines.append(f"- {name}: {_fmt(r['ratio'], '.2f')} ({who})")
        lines.append("")
    st = s["structure"]
    lines += ["## How far the value functions are from additive (Shapley-kernel-weighted variance left unexplained)",
              "", "| words | by main effects | + pairwise | + third order |", "|---|---|---|---|"]
    lines += [f"| {p['words']} | {p['unexplained_linear']:.3f} | {p['unexplained_pairwise']:.3f} | "
              f"{p['unexplained_third_order']:.3f} |" for p in st["per_prompt"]]
    lines.append("")
    for t, c in st["ratio_ceiling_vs_shap_kernel"].items():
        lines.append(f"- error {t}: shap_kernel needs {_fmt(c['shap_kernel_evaluations'], '.0f')} evaluations; no estimator determines "
                     f"the values of every additive game from fewer than F + 1 = {c['fewest_possible']:.0f}: ratio <= "
                     f"{_fmt(c['ratio_ceiling'], '.1f')}")
    lines.append("")
    o = s["occlusion"]
    if o is None:
        return "\n".join(lines)
    lines += ["## Occlusion (leave-one-word-out), total of per-prompt medians", "",
              ("| ours (batched, KV reuse) | Captum FeatureAblation, forward_in_tokens=False | Captum default "
              "(forward_in_tokens=True) |"), "|---|---|---|",
              (f"| {o['ours_seconds']:.2f} s | {o['captum_seq_seconds']:.2f} s ({o['speedup_vs_captum_seq']:.2f}x) | "
              f"{o['captum_tokens_seconds']:.2f} s ({o['speedup_vs_captum_tokens']:.2f}x) |"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
