"""Explorer tab "tokenization": the text as a token strip under the LM's tokenizer (coloured by the LM's
surprisal of each token) or under another tokenizer, an optional continuation from `lm.generate`, and a
table comparing token counts across tokenizers."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.views.explorer import Control, ExplorerTab, Progress, register_tab
from workbench.views.table import Table
from workbench.views.token_strip import TokenStrip


def surprisal_bits(lm: Any, ids: Sequence[int]) -> list[float | None]:
    """-log2 p(token_t | tokens_<t) under `lm` for every token after the first (one forward pass);
    the first token has no context, so its score is None."""
    import torch

    if len(ids) > lm.max_context:
        raise ValueError(f"text: {len(ids)} tokens exceed the model's context of {lm.max_context}")
    with torch.no_grad():
        logits = lm.forward(torch.tensor([list(ids)], device=lm.device)).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    picked = logp.gather(1, torch.tensor(ids[1:], device=logp.device)[:, None])[:, 0]
    return [None] + (-picked / math.log(2)).tolist()


def _tokenizer_assets() -> list[str]:
    """Names of the tokenizer assets, when workbench.assets is available."""
    try:
        from workbench.assets import list_assets
    except ImportError:
        return []
    return [a.name for a in list_assets() if a.kind == "tokenizer"]


@register_tab("tokenization", title="Tokenization")
class TokenizationTab(ExplorerTab):
    """`tokenizers`: extra tokenizers to offer and compare: names for `workbench.tokenization.load_tokenizer`
    (asset, folder, tiktoken encoding) or tokenizer objects, optionally as a {label: tokenizer} mapping."""

    def __init__(self, tokenizers: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        pairs = tokenizers.items() if isinstance(tokenizers, Mapping) else (
            (t if isinstance(t, str) else getattr(t, "name", type(t).__name__), t) for t in tokenizers)
        self.extra: dict[str, Any] = {}
        for label, tokenizer in pairs:
            if label == "lm":
                raise ValueError("tokenizers: 'lm' is reserved for the LM's own tokenizer; use another label")
            self.extra[str(label)] = tokenizer
        self._loaded: dict[str, Any] = {}

    def choices(self) -> list[str]:
        return list(dict.fromkeys([*self.extra, *_tokenizer_assets()]))

    def controls(self, lm: Any) -> list[Control]:
        options = [("lm", f"LM tokenizer ({getattr(lm.tokenizer, 'name', 'lm')})")] + [(n, n) for n in self.choices()]
        return [
            Control("tokenizer", "dropdown", "lm", options=options),
            Control("colour", "dropdown", "surprisal", label="colour",
                    options=[("surprisal", "LM surprisal (bits)"), ("none", "none")]),
            Control("max_new_tokens", "slider", 0, label="generate tokens", min=0, max=128, step=1),
            Control("temperature", "slider", 0.0, min=0.0, max=2.0, step=0.05),
            Control("seed", "number", 0, min=0, max=2**31 - 1, step=1),
        ]

    def tokenizer(self, lm: Any, label: str) -> Any:
        if label == "lm":
            return lm.tokenizer
        if label not in self._loaded:
            from workbench.tokenization import load_tokenizer

            self._loaded[label] = load_tokenizer(self.extra.get(label, label))
        return self._loaded[label]

    def run(self, lm: Any, text: str, values: dict[str, Any], progress: Progress) -> list[Any]:
        if not text:
            raise ValueError("text: is empty; type some text to tokenize")
        lm_tok = lm.tokenizer
        progress(0.0, "tokenizing")
        prompt_ids = [int(i) for i in lm_tok.encode(text)]
        new_ids: list[int] = []
        generation = None
        if values["max_new_tokens"]:
            progress(None, f"generating {values['max_new_tokens']} tokens")
            generation = lm.generate(prompt_ids, max_new_tokens=values["max_new_tokens"],
                                     temperature=values["temperature"], seed=values["seed"])
            new_ids = [int(i) for i in generation.new_ids]
        continuation = b"".join(lm_tok.token_bytes(i) for i in new_ids).decode("utf-8", errors="replace")
        label = values["tokenizer"]
        suffix = f" + {len(new_ids)} generated" if generation is not None else ""
        if label == "lm":
            ids = prompt_ids + new_ids
            scores = None
            if values["colour"] == "surprisal":
                progress(0.6, "scoring tokens (one forward pass)")
                scores = surprisal_bits(lm, ids)
            strip = TokenStrip.from_ids(lm_tok, ids, scores=scores, score_label="surprisal (bits)",
                                        title=f"{getattr(lm_tok, 'name', 'lm')}: {len(prompt_ids)} tokens{suffix}")
        else:
            progress(0.6, f"loading tokenizer {label}")
            tokenizer = self.tokenizer(lm, label)
            strip = TokenStrip.from_text(tokenizer, text + continuation,
                                         title=f"{label}: text{' + continuation' if generation else ''}")
        # The LM row counts the real ids and bytes; the others re-tokenize the text (a continuation that is not
        # valid UTF-8 on its own is decoded with replacement characters first).
        size = len(text.encode("utf-8")) + sum(len(lm_tok.token_bytes(i)) for i in new_ids)
        rows = [{"tokenizer": f"lm ({getattr(lm_tok, 'name', '')})", "tokens": len(prompt_ids) + len(new_ids),
                 "bytes": size, "bytes/token": size / max(1, len(prompt_ids) + len(new_ids))}]
        full = text + continuation
        for name in progress.iter([n for n in dict.fromkeys([*self.extra, label]) if n != "lm"], "counting tokens"):
            count, size = len(self.tokenizer(lm, name).encode(full)), len(full.encode("utf-8"))
            rows.append({"tokenizer": name, "tokens": count, "bytes": size,
                         "bytes/token": size / count if count else None})
        counts_title = "token counts on the text" + (" + continuation" if new_ids else "")
        views: list[Any] = [strip, Table(rows, title=counts_title)]
        if generation is not None:
            views.append(Table([{
                "new tokens": len(new_ids), "seconds": getattr(generation, "seconds", None),
                "tokens/s": getattr(generation, "tokens_per_second", None),
                "forward calls": getattr(generation, "forward_calls", None), "continuation": continuation,
            }], title="generation"))
        return views
