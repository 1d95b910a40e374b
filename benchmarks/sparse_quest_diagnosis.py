"""Why Quest trails the other query-aware policies on the default model (issue #6): its loss split into steps.

    OMP_NUM_THREADS=1 python benchmarks/sparse_quest_diagnosis.py [--prefix 4096] [--queries 64]
        [--budgets 256 512 1024] [--page-size 16] [--layers 2 3 ...] [--ppl-score 128] [--ppl-texts 2]
        [--ppl-budget 512] [--threads 1]

Quest (Tang et al., 2024) ranks pages of `page_size` keys by an upper bound of q.k built from the page's
channel-wise key min/max, and reads the top pages. Between "the best tokens" and "what Quest reads" there are
three steps, each measured here by a selection of the same token count per KV head:

  token_oracle      top-k tokens by true attention, the group's softmax probabilities summed (the `oracle` policy)
  page_mass         pages by the true attention mass inside them (group sum): the best a page-granular
                    selector can do. token_oracle -> page_mass = the cost of page granularity.
  page_maxqk        pages by the exact max q.k inside them, max over the group's query heads: what Quest's
                    bound approximates. page_mass -> page_maxqk = the cost of ranking by a max instead of mass.
  quest             the `quest` policy itself (registry, real code). page_maxqk -> quest = the bound's looseness.
  variants (not the paper; labelled so):
  page_maxqk_softmax  exact per-page max q.k, softmax over pages per query head, summed over the group.
  quest_softmax_sum   Quest's bound, softmax over pages per query head (scaled like logits), summed over the group.
  quest_union         each query head ranks pages by its own bound; pages taken by their best rank in the group
                      (the per-head top pages united, at the same token count).
  quest_sink          Quest with the first page (the attention-sink token 0) always read, like the current page
                      (StreamingLLM's sinks; not in the Quest paper nor its evaluation code).
  quest_softmax_sink  quest_softmax_sum with the first page always read (both changes together).
  quest_per_qhead     the paper's MHA setting: every query head its own Quest selection (the policy run on the
                      keys repeated per query head). Reads up to group_size x the budget per KV head
                      (`distinct_per_kv_head` in the JSON) -- an upper reference, not an equal-cost one.

Every page-based selection uses Quest's fill rule: the current token's page first, then whole pages in score order,
the last one cut to its most recent tokens (ties to the more recent position), so all have exactly `budget` tokens.

Protocol: one Botchan window of `prefix + queries` tokens (`text_windows` of sparse_quality.py: the start of its
first window), one dense forward of the default model through `lm.attention` recording every layer's post-RoPE
queries, keys and values (the override returns `reference_attention`, so the forward is the normal one). The last
`queries` positions are the decode queries, each attending causally to its prefix (context prefix+1 ..
prefix+queries): what teacher-forced decoding at ~4k sees in sparse_quality.py's perplexity. For every layer >= 2
(Quest's first two are dense) and every selection: attention-mass recall (`metrics.mass_recall`), relative output
error (`metrics.output_error`), overlap with the token oracle (|S & O| / |O|), and whether the first token (the
attention sink) is read; means over queries and query heads, per layer, per KV head and overall (layers >= 2).
Simplification: each layer sees the dense model's queries and keys, so errors do not compound across layers as
they do in the perplexity run; the numbers isolate each layer's selection. Also per layer: the true attention on
token 0 (the sink), the mean gap between Quest's bound and the page's exact max logit, and page 0's rank under
Quest's score; and a check that the `quest` policy equals this script's reading of it (group-max bound + fill rule).
Perplexity check (`--ppl-score`, 0 skips it): the windows and protocol of sparse_quality.py's perplexity
(`policy_perplexity`: dense prefix, then teacher-forced decode steps under each selection, errors compounding),
at `--ppl-budget`, for quest, the oracle and the page rankings (as unregistered Selectors defined here).
Writes benchmarks/results/sparse_quest_diagnosis.json and .md (`--out`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from tqdm.auto import tqdm

from workbench.sparse.selector import LayerState, Selector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_quality import text_windows

SELECTIONS = ["token_oracle", "page_mass", "page_maxqk", "quest", "page_maxqk_softmax", "quest_softmax_sum",
              "quest_union", "quest_per_qhead", "quest_sink", "quest_softmax_sink"]
VARIANTS = {"page_maxqk_softmax", "quest_softmax_sum", "quest_union", "quest_per_qhead", "quest_sink",
            "quest_softmax_sink"}


def capture(lm, ids: torch.Tensor, queries: int) -> list[dict]:
    """Per layer: the last `queries` positions' queries [1, H, Q, D], all keys and values [1, H_kv, S, D], scaling."""
    from workbench.models.attention import reference_attention

    layers: list[dict] = [{} for _ in range(lm.num_layers)]

    def record(query, key, value, *, layer_idx, scaling, attention_mask, module):
        layers[layer_idx] = {"query": query[:, :, -queries:].float().clone(), "key": key.float().clone(),
                             "value": value.float().clone(), "scaling": float(scaling)}
        return reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask, module=module)

    with lm.attention(record):
        lm.forward(ids[None])
    return layers


def page_of(context_len: int, page_size: int) -> torch.Tensor:
    return torch.arange(context_len) // page_size


def fill_pages(page_score: torch.Tensor, context_len: int, page_size: int, k: int | list[int]) -> torch.Tensor:
    """Quest's fill rule for any page ranking [B, H_kv, P]: the current page first, then pages by score (higher
    first), the last one cut to its most recent tokens. Returns sorted indices [B, H_kv, k]."""
    from workbench.kernels import topk_select

    page = page_of(context_len, page_size).to(page_score.device)
    token_score = page_score[..., page].masked_fill(page == page[-1], float("inf"))
    return topk_select(token_score.float().contiguous(), k, "higher", check_values=False)


def page_reduce(per_token: torch.Tensor, page_size: int, how: str) -> torch.Tensor:
    """[..., S] -> [..., P]: sum or max of each page's entries (the last page may be partial)."""
    s = per_token.shape[-1]
    pages = -(-s // page_size)
    fill = 0.0 if how == "sum" else float("-inf")
    padded = torch.cat([per_token, per_token.new_full((*per_token.shape[:-1], pages * page_size - s), fill)], -1)
    view = padded.reshape(*per_token.shape[:-1], pages, page_size)
    return view.sum(-1) if how == "sum" else view.amax(-1)


def union_score(per_head: torch.Tensor, h_kv: int) -> torch.Tensor:
    """[B, H, P] per-query-head page scores -> [B, H_kv, P]: minus the best rank any head of the group gives the
    page, ties broken by the group's summed softmax (< 1 rank step), so filling takes the per-head tops united."""
    b, h, p = per_head.shape
    rank = per_head.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1).float()
    best = rank.reshape(b, h_kv, h // h_kv, p).amin(2)
    tie = per_head.softmax(-1).reshape(b, h_kv, h // h_kv, p).mean(2)
    return -best + 0.5 * tie


def selections(name_k: tuple[str, int], q: torch.Tensor, keys: torch.Tensor, layer: int, scaling: float,
               page_size: int, cache: dict) -> torch.Tensor:
    """The indices [1, H_kv, k] of one selection (for quest_per_qhead: [1, H, k] over the repeated keys)."""
    from workbench.sparse.ranking import group_max, group_sum
    from workbench.sparse.reference import repeat_kv
    from workbench.sparse.registry import get_selector

    name, k = name_k
    s, h_kv = keys.shape[2], keys.shape[1]
    state = LayerState(q, keys, layer_idx=layer, scaling=scaling)
    if name == "token_oracle":
        return get_selector("oracle", budget=k).select(state)
    if name == "quest":
        return get_selector("quest", budget=k, page_size=page_size).select(state)
    if name == "quest_per_qhead":
        rep = LayerState(q, repeat_kv(keys, q.shape[1] // h_kv), layer_idx=layer, scaling=scaling)
        return get_selector("quest", budget=k, page_size=page_size).select(rep)
    if "logits" not in cache:
        cache["logits"] = state.logits()  # [1, H, S], scaled
        cache["probs"] = cache["logits"].softmax(-1)
    if name == "page_mass":
        score = group_sum(page_reduce(cache["probs"], page_size, "sum"), h_kv)
    elif name == "page_maxqk":
        score = group_max(page_reduce(cache["logits"], page_size, "max"), h_kv)
    elif name == "page_maxqk_softmax":
        score = group_sum(page_reduce(cache["logits"], page_size, "max").softmax(-1), h_kv)
    else:
        if "bound" not in cache:
            from workbench.sparse.policies.quest import page_bounds, page_upper_bound

            kmin, kmax = page_bounds(keys, page_size)
            cache["bound"] = page_upper_bound(q, kmin, kmax) * scaling  # [1, H, P], on the logit scale
        if name == "quest_sink":
            score = group_max(cache["bound"], h_kv).index_fill(-1, torch.tensor([0]), float("inf"))
        elif name == "quest_softmax_sum":
            score = group_sum(cache["bound"].softmax(-1), h_kv)
        elif name == "quest_softmax_sink":
            score = group_sum(cache["bound"].softmax(-1), h_kv).index_fill(-1, torch.tensor([0]), float("inf"))
        elif name == "quest_union":
            score = union_score(cache["bound"], h_kv)
        else:
            raise ValueError(f"unknown selection {name!r}; known: {SELECTIONS}")
    return fill_pages(score, s, page_size, k)


PPL_RANKINGS = ["page_mass", "page_maxqk", "quest_softmax_sum", "quest_sink", "quest_softmax_sink"]


@dataclass
class PageRanked(Selector):
    """A page selector by one of this script's page rankings, with Quest's fill rule and dense first layers, for the
    perplexity check (not registered, not a policy of the package). ranking: one of PPL_RANKINGS."""

    ranking: str = "page_mass"
    page_size: int = 16
    dense_layers: int = 2

    name: ClassVar[str] = "page_ranked"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ranking not in PPL_RANKINGS:
            raise ValueError(f"ranking must be one of {PPL_RANKINGS}, got {self.ranking!r}")

    def select(self, state: LayerState) -> torch.Tensor:
        from workbench.sparse.ranking import all_positions

        if state.layer_idx < self.dense_layers:
            return all_positions(state.batch, state.num_kv_heads, state.context_len, state.keys.device)
        k = self.k_per_head(state)
        return selections((self.ranking, k), state.query, state.keys, state.layer_idx, state.scale, self.page_size, {})


def perplexity_check(lm, ids: torch.Tensor, prefix: int, score: int, budget: int, page_size: int) -> list[dict]:
    """ppl delta vs full of quest and of the page rankings at one budget, teacher-forced after a dense prefix."""
    from workbench.sparse.perplexity import policy_perplexity

    runs = [("quest", budget, {"page_size": page_size}), ("oracle", budget)]
    runs += [PageRanked(budget=budget, ranking=r, page_size=page_size) for r in PPL_RANKINGS]
    res = policy_perplexity(lm, ids, prefix, score, runs, group=len(runs) + 1, progress=True)
    rows = []
    for r in res.rows:
        label = r.params.get("ranking", r.policy)
        rows.append({"selection": "token_oracle" if label == "oracle" else label, "variant": label in VARIANTS,
                     "budget": r.budget, "ppl": r.ppl, "delta": r.delta, "recall": r.recall,
                     "normalized_recall": r.normalized_recall, "tokens": r.tokens})
    return rows


def measure(q, keys, values, idx, oracle_mask, scaling) -> dict:
    """Per query head: recall, output error, overlap with the token oracle, sink read ([H] tensors)."""
    from workbench.sparse.metrics import mass_recall, output_error
    from workbench.sparse.ranking import indices_to_mask
    from workbench.sparse.reference import repeat_kv

    h, h_kv, s = q.shape[1], keys.shape[1], keys.shape[2]
    if idx.shape[1] != h_kv:  # per-query-head selection over repeated keys
        keys, values = repeat_kv(keys, h // h_kv), repeat_kv(values, h // h_kv)
    g = h // keys.shape[1]
    mask = indices_to_mask(idx, s).repeat_interleave(g, dim=1)[0]  # [H, S]
    omask = oracle_mask.repeat_interleave(h // h_kv, dim=1)[0]
    return {"recall": mass_recall(q, keys, idx, scaling)[0], "error": output_error(q, keys, values, idx, scaling)[0],
            "overlap": (mask & omask).sum(-1).float() / omask.sum(-1).float(), "sink": mask[:, 0].float()}


def layer_stats(cache: dict, h_kv: int, page_size: int) -> dict:
    """Per query head [H]: the true attention on token 0 (the sink), how far Quest's bound lies above the exact
    max logit of a page (mean over pages, logit units), and the rank of page 0 under Quest's group-max score."""
    from workbench.sparse.ranking import group_max

    bound, logits = cache["bound"][0], cache["logits"][0]
    score = group_max(cache["bound"], h_kv)[0]
    rank = (score > score[:, :1]).sum(-1).double().repeat_interleave(bound.shape[0] // h_kv)
    return {"sink_mass": cache["probs"][0, :, 0], "bound_gap": (bound - page_reduce(logits, page_size, "max")).mean(-1),
            "page0_rank": rank}


def run(layers: list[dict], layer_ids: list[int], budgets: list[int], page_size: int, n_queries: int) -> dict:
    """Accumulate per (budget, selection, layer) the per-query-head means over the decode queries."""
    from workbench.sparse.ranking import PAD, group_max, indices_to_mask

    acc: dict = {}
    distinct: dict = {}
    agree: dict = {}
    bar = tqdm(total=len(layer_ids) * n_queries, desc="layers x queries")
    for layer in layer_ids:
        cap = layers[layer]
        prefix = cap["key"].shape[2] - n_queries
        for i in range(n_queries):
            s = prefix + i + 1
            q, keys, values = cap["query"][:, :, i], cap["key"][:, :, :s], cap["value"][:, :, :s]
            cache: dict = {}
            for k in budgets:
                oracle = selections(("token_oracle", k), q, keys, layer, cap["scaling"], page_size, cache)
                oracle_mask = indices_to_mask(oracle, s)
                for name in SELECTIONS:
                    idx = oracle if name == "token_oracle" else selections(
                        (name, k), q, keys, layer, cap["scaling"], page_size, cache)
                    m = measure(q, keys, values, idx, oracle_mask, cap["scaling"])
                    slot = acc.setdefault((k, name, layer), {key: 0.0 for key in m})
                    for key, v in m.items():
                        slot[key] = slot[key] + v.double()
                    if name == "quest_per_qhead":
                        h_kv = keys.shape[1]
                        union = indices_to_mask(idx, s).reshape(1, h_kv, -1, s).any(2).sum(-1).double()[0]
                        distinct[k] = distinct.get(k, 0.0) + union / (len(layer_ids) * n_queries)
                    assert (idx != PAD).sum(-1).min() == min(k, s) or name == "quest_per_qhead"
                    if name == "quest":
                        quest_idx = idx
                # the policy against this script's reading of it (same fill rule, Quest's bound, group max)
                mine = fill_pages(group_max(cache["bound"], keys.shape[1]), s, page_size, k)
                agree[k] = agree.get(k, 0) + int(torch.equal(mine, quest_idx))
            stats = layer_stats(cache, keys.shape[1], page_size)
            slot = acc.setdefault(("stats", layer), {key: 0.0 for key in stats})
            for key, v in stats.items():
                slot[key] = slot[key] + v.double()
            bar.update(1)
    bar.close()
    return {"acc": acc, "distinct": distinct, "quest_agrees": {str(k): v / (len(layer_ids) * n_queries)
                                                               for k, v in agree.items()}}


def summarize(acc: dict, distinct: dict, layer_ids: list[int], budgets: list[int], n_queries: int,
              group: int) -> dict:
    out: dict = {"overall": [], "per_layer": [], "per_kv_head": [], "layer_stats": [],
                 "quest_per_qhead_distinct_per_kv_head": {str(k): [round(float(x), 1) for x in v]
                                                          for k, v in distinct.items()}}
    for layer in layer_ids:
        slot = {key: v / n_queries for key, v in acc[("stats", layer)].items()}
        out["layer_stats"].append({"layer": layer, **{key: float(v.mean()) for key, v in slot.items()},
                                   "per_kv_head": {key: [float(v[g * group:(g + 1) * group].mean())
                                                         for g in range(v.shape[0] // group)]
                                                   for key, v in slot.items()}})
    for k in budgets:
        for name in SELECTIONS:
            per_layer = []
            for layer in layer_ids:
                slot = {key: v / n_queries for key, v in acc[(k, name, layer)].items()}  # [H] means over queries
                row = {key: float(v.mean()) for key, v in slot.items()}
                row["max_head_error"] = float(slot["error"].max())
                per_layer.append({"budget": k, "selection": name, "layer": layer, **row})
                for g in range(slot["error"].shape[0] // group):
                    part = slice(g * group, (g + 1) * group)
                    out["per_kv_head"].append({"budget": k, "selection": name, "layer": layer, "kv_head": g,
                                               **{key: float(v[part].mean()) for key, v in slot.items()}})
            out["per_layer"] += per_layer
            mean = {key: sum(r[key] for r in per_layer) / len(per_layer)
                    for key in ("recall", "error", "overlap", "sink")}
            worst = max(per_layer, key=lambda r: r["error"])
            out["overall"].append({"budget": k, "selection": name, "variant": name in VARIANTS, **mean,
                                   "worst_layer": worst["layer"], "worst_layer_error": worst["error"]})
    return out


def markdown(res: dict) -> str:
    summ, cfg = res["summary"], res["config"]
    k = 512 if 512 in cfg["budgets"] else cfg["budgets"][len(cfg["budgets"]) // 2]
    lines = ["# Quest diagnosis (smollm2-135m): where the loss comes from", "",
             f"Command: `{res['command']}`  ",
             (f"Load average at start / end: {res['loadavg_start']} / {res['loadavg_end']}; capture "
              f"{res['capture_seconds']:.0f} s, selections {res['select_seconds']:.0f} s, perplexity "
              f"{res['ppl_seconds']:.0f} s, total {res['seconds']:.0f} s"),
             "",
             (f"One {cfg['prefix'] + cfg['queries']}-token Botchan window, decode queries = the last {cfg['queries']} "
              f"positions (context {cfg['prefix'] + 1}..{cfg['prefix'] + cfg['queries']}), layers "
              f"{cfg['layers'][0]}..{cfg['layers'][-1]}, page size {cfg['page_size']}. Means over queries, query heads "
              "and layers. Variants (*) are not the paper's method; quest_per_qhead reads more than the budget."),
             "", "## Overall", "",
             "| selection | " + " | ".join(f"recall @{k}" for k in cfg["budgets"]) + " | "
             + " | ".join(f"out. error @{k}" for k in cfg["budgets"]) + f" | overlap w/ oracle @{k} | sink read @{k} |",
             "|---" * (2 * len(cfg["budgets"]) + 3) + "|"]
    for name in SELECTIONS:
        rows = {r["budget"]: r for r in summ["overall"] if r["selection"] == name}
        label = name + (" *" if name in VARIANTS else "")
        lines.append(f"| {label} | " + " | ".join(f"{rows[k]['recall']:.3f}" for k in cfg["budgets"]) + " | "
                     + " | ".join(f"{rows[k]['error']:.3f}" for k in cfg["budgets"])
                     + f" | {rows[k]['overlap']:.3f} | {rows[k]['sink']:.2f} |")
    shown = ["token_oracle", "page_mass", "page_maxqk", "quest", "quest_softmax_sum", "quest_sink", "quest_softmax_sink"]
    lines += ["", f"## Per layer at budget {k}: recall / output error", "",
              ("sink mass: true attention on token 0; bound gap: Quest's bound minus the page's exact max logit (mean "
               "over pages, logit units); page-0 rank: its rank under Quest's score (pages read at this budget: "
               f"{k // cfg['page_size']}). Means over query heads and queries."), "",
              "| layer | sink mass | bound gap | page-0 rank | " + " | ".join(shown) + " |",
              "|---" * (len(shown) + 4) + "|"]
    for layer in cfg["layers"]:
        st = next(r for r in summ["layer_stats"] if r["layer"] == layer)
        cells = [f"{st['sink_mass']:.2f}", f"{st['bound_gap']:.1f}", f"{st['page0_rank']:.0f}"]
        for name in shown:
            r = next(r for r in summ["per_layer"] if r["budget"] == k and r["selection"] == name and r["layer"] == layer)
            cells.append(f"{r['recall']:.3f} / {r['error']:.3f}")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    if res.get("perplexity"):
        p = res["perplexity"]
        lines += ["", (f"## Perplexity check: {cfg['ppl_texts']} Botchan windows (sparse_quality.py's text_windows), "
                       f"{cfg['ppl_score']} tokens each scored after the dense {cfg['prefix']}-token prefix "
                       f"(teacher forcing: errors compound over layers and steps), budget {cfg['ppl_budget']}; "
                       f"full-KV ppl {p[0]['ppl']:.3f}"), "",
                  "| selection | ppl | delta vs full | recall (normalized) |", "|---|---|---|---|"]
        for r in p[1:]:
            lines.append(f"| {r['selection']}{' *' if r['variant'] else ''} | {r['ppl']:.3f} | {r['delta']:+.1%} | "
                         f"{r['recall']:.3f} ({r['normalized_recall']:.2f}) |")
    if res.get("findings"):
        lines += ["", "## Findings", ""] + [f"- {f}" for f in res["findings"]]
    return "\n".join(lines) + "\n"


def rounded(obj, digits: int = 5):
    """The results with floats rounded (keeps the JSON small: one row per layer, KV head, budget, selection)."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v, digits) for v in obj]
    return obj


def dumps(res: dict) -> str:
    """JSON text, indented, with the long row lists of the summary one row per line."""
    summary = res["summary"]
    long = [k for k in ("per_layer", "per_kv_head", "layer_stats") if k in summary]
    text = json.dumps({**res, "summary": {**summary, **{k: f"@{k}@" for k in long}}}, indent=1)
    for k in long:
        rows = ",\n  ".join(json.dumps(r) for r in summary[k])
        text = text.replace(f'"@{k}@"', "[\n  " + rows + "\n  ]")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prefix", type=int, default=4096, help="context before the first decode query")
    ap.add_argument("--queries", type=int, default=64, help="decode queries: the last positions of the window")
    ap.add_argument("--budgets", nargs="*", type=int, default=[256, 512, 1024])
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--layers", nargs="*", type=int, default=None, help="default: every layer >= 2")
    ap.add_argument("--ppl-score", type=int, default=128,
                    help="perplexity check: tokens scored after the dense prefix, per window (0: skip)")
    ap.add_argument("--ppl-texts", type=int, default=2, help="perplexity check: Botchan windows")
    ap.add_argument("--ppl-budget", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/sparse_quest_diagnosis")
    ap.add_argument("--findings", nargs="*", default=None,
                    help="with --render: free-text findings written into the results")
    ap.add_argument("--render", action="store_true",
                    help="no run: rewrite --out's .md (and the findings in its .json) from its .json")
    args = ap.parse_args()
    if args.render:
        out = Path(args.out)
        res = json.loads(out.with_suffix(".json").read_text())
        if args.findings is not None:
            res["findings"] = args.findings
        out.with_suffix(".json").write_text(dumps(res))
        out.with_suffix(".md").write_text(markdown(res))
        print(markdown(res))
        return
    if args.prefix < 1 or args.queries < 1:
        raise SystemExit(f"--prefix and --queries must be >= 1, got {args.prefix}, {args.queries}")
    if args.page_size < 1:
        raise SystemExit(f"--page-size must be >= 1, got {args.page_size}")
    if not args.budgets or min(args.budgets) < 1 or max(args.budgets) > args.prefix:
        raise SystemExit(f"--budgets must lie in [1, --prefix={args.prefix}], got {args.budgets}")
    if args.ppl_score < 0 or (args.ppl_score and (args.ppl_texts < 1 or not 1 <= args.ppl_budget <= args.prefix)):
        raise SystemExit(f"--ppl-score must be >= 0, --ppl-texts >= 1 and --ppl-budget in [1, --prefix], got "
                         f"{args.ppl_score}, {args.ppl_texts}, {args.ppl_budget}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from workbench.models import LM

    t0, load0 = time.perf_counter(), os.getloadavg()
    lm = LM.load(args.model)
    layer_ids = args.layers if args.layers is not None else list(range(2, lm.num_layers))
    bad = [x for x in layer_ids if not 0 <= x < lm.num_layers]
    if bad or not layer_ids:
        raise SystemExit(f"--layers must be in [0, {lm.num_layers}), got {args.layers}")
    if args.prefix + max(args.queries, args.ppl_score) > lm.max_context:
        raise SystemExit(f"--prefix + --queries (or --ppl-score) exceeds the model's context {lm.max_context}")
    windows = text_windows(lm, max(1, args.ppl_texts), max(args.prefix + args.queries, args.prefix + args.ppl_score + 1))
    t1 = time.perf_counter()
    layers = capture(lm, windows[0, :args.prefix + args.queries], args.queries)
    t2 = time.perf_counter()
    with torch.no_grad():
        raw = run(layers, layer_ids, args.budgets, args.page_size, args.queries)
    t3 = time.perf_counter()
    del layers
    ppl = perplexity_check(lm, windows[:, :args.prefix + args.ppl_score + 1], args.prefix, args.ppl_score,
                           args.ppl_budget, args.page_size) if args.ppl_score else []
    t4 = time.perf_counter()
    summary = summarize(raw["acc"], raw["distinct"], layer_ids, args.budgets, args.queries,
                        lm.num_heads // lm.num_kv_heads)
    summary["quest_reimplementation_agrees"] = raw["quest_agrees"]
    res = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/sparse_quest_diagnosis.py " + " ".join(sys.argv[1:]),
        "config": {"model": args.model, "prefix": args.prefix, "queries": args.queries, "budgets": args.budgets,
                   "page_size": args.page_size, "layers": layer_ids, "ppl_score": args.ppl_score, "ppl_texts": args.ppl_texts,
                   "ppl_budget": args.ppl_budget, "threads": torch.get_num_threads(),
                   "num_heads": lm.num_heads, "num_kv_heads": lm.num_kv_heads, "head_dim": lm.head_dim},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "cpus": os.cpu_count()},
        "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "capture_seconds": t2 - t1, "select_seconds": t3 - t2, "ppl_seconds": t4 - t3, "seconds": time.perf_counter() - t0,
        "selections": SELECTIONS, "variants": sorted(VARIANTS), "summary": summary, "perplexity": ppl,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(dumps(rounded(res)))
    out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
