"""What is being explained: the rows of an attribution.

A target is given to `attribute(..., target=...)` as one of

- a string or a list of token ids: a continuation, teacher-forced after the prompt; one row per continuation
  token, its log-probability log p(y_j | prompt, y_<j);
- None: the model's own greedy continuation (`max_new_tokens` of them, a final end-of-sequence token dropped),
  then explained like a given continuation;
- `Contrastive(a, b)`: one row, log p(a | prompt) - log p(b | prompt) (sequence log-probabilities, so a and b
  may have different lengths; Yin & Neubig 2022, "Interpreting Language Models with Contrastive Explanations");
- `TargetFunction(fn, continuation, names)` or a bare callable: any function of the output distribution.
  `fn(logits, ids)` receives the logits [B, n + 1, V] of the positions that predict each continuation token and
  the token after it (n = len(continuation); n = 0 gives the next-token distribution after the prompt) and the
  continuation ids [n]; it returns [B] (one row) or [B, len(names)]. `sequence_log_likelihood(text)` and
  `kl_from_prompt(lm, other_prompt)` (KL between the next-token distributions after two prompts) are two.

Every target is reduced to the same form (`ResolvedTarget`): continuations to teacher-force (one, or two for
contrastive targets) and a differentiable `score(logits_per_continuation) -> [B, R]`, so every method works on
every target.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.attribution.units import Unit
from workbench.tokenization.protocol import InputTypeError

ScoreFn = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Contrastive:
    """Explain log p(a | prompt) - log p(b | prompt); a and b are strings or token-id lists."""

    a: str | Sequence[int]
    b: str | Sequence[int]


@dataclass(frozen=True)
class TargetFunction:
    """Explain `fn(logits [B, n + 1, V], ids [n]) -> [B] or [B, len(names)]` after teacher-forcing
    `continuation` (see the module docstring). fn must be differentiable for gradient methods."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    continuation: str | Sequence[int] = ""
    names: tuple[str, ...] = ("f",)


def sequence_log_likelihood(continuation: str | Sequence[int]) -> TargetFunction:
    """The target sum_j log p(y_j | prompt, y_<j) of a continuation, as one row."""

    def loglik(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[0]
        logp = torch.log_softmax(logits[:, :n].float(), dim=-1)
        return logp.gather(-1, ids.view(1, n, 1).expand(logits.shape[0], n, 1))[..., 0].sum(-1)

    return TargetFunction(loglik, continuation, ("log p(continuation)",))


def kl_from_prompt(lm: Any, reference: str | Sequence[int], continuation: str | Sequence[int] = "",
                   reverse: bool = False) -> TargetFunction:
    """The target KL(p(. | reference, y_<j) || p(. | prompt, y_<j)) summed over j = 0 .. n, as one row: how far
    the attributed prompt moves the model's next-token distributions away from those after `reference` (with
    reverse=True, KL(p(. | prompt) || p(. | reference))). The continuation y (n tokens, may be empty: then only
    the next-token distribution) is teacher-forced after both prompts. The reference's distributions are computed
    here, once, without gradients; a string reference is encoded like a prompt (special tokens added)."""
    from workbench.models.generation import prompt_ids

    if not isinstance(reverse, bool):
        raise InputTypeError(f"reverse must be a bool, got {reverse!r}")
    if isinstance(reference, (str, list, tuple)) and len(reference) == 0:
        raise ValueError("reference is empty: give the prompt whose next-token distributions to compare against")
    ref = prompt_ids(lm, reference)
    empty = isinstance(continuation, (str, list, tuple)) and len(continuation) == 0
    cont = [] if empty else tokenize_continuation(lm, continuation, "continuation")[0]
    n = len(cont)
    if len(ref) + n > lm.max_context:
        raise ValueError(f"reference + continuation is {len(ref) + n} tokens, more than the model's context "
                         f"({lm.max_context})")
    with torch.no_grad():
        logits = lm.forward(ref + cont, logits_to_keep=n + 1).logits
    ref_logp = torch.log_softmax(logits[0].float(), dim=-1)  # [n + 1, V]

    def kl(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits[:, :n + 1].float(), dim=-1)
        other = ref_logp.to(logp.device)[None]
        first, second = (logp, other) if reverse else (other, logp)
        return (first.exp() * (first - second)).sum(-1).sum(-1)

    name = "KL(prompt || reference)" if reverse else "KL(reference || prompt)"
    return TargetFunction(kl, cont, (name,))


@dataclass
class ResolvedTarget:
    """A target reduced to teacher-forced continuations and a score function.

    kind: "continuation" | "generation" | "contrastive" | "function".
    continuations: token ids fed after the prompt, one list per forward (may be empty).
    rows: one Unit per row (tokens with byte offsets into `text`, or kind "value" for scalar rows).
    query_offsets: row r reads the model at position prompt_len - 1 + query_offsets[r] (the position that
        predicts the row's token; 0 for scalar rows), used by attention methods.
    score: logits [B, n_k + 1, V] per continuation -> scores [B, R].
    """

    kind: str
    continuations: list[list[int]]
    rows: list[Unit]
    query_offsets: list[int]
    score: ScoreFn
    text: str = ""
    generation: dict[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return len(self.rows)


@dataclass
class TargetSpec:
    """A validated target before any model work (greedy generation happens in `resolve`)."""

    kind: str
    continuations: list[tuple[list[int], str, list[tuple[int, int]]]]
    fn: Callable | None = None
    names: tuple[str, ...] = ()
    max_new_tokens: int = 0


def check_target(lm: Any, target: object, max_new_tokens: int = 16) -> TargetSpec:
    """Validate `target` (see the module docstring) and tokenize its continuations; no model work."""
    if target is None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1 (used when target is None), got {max_new_tokens!r}")
        return TargetSpec("generation", [], max_new_tokens=max_new_tokens)
    if isinstance(target, Contrastive):
        a = tokenize_continuation(lm, target.a, "target.a")
        b = tokenize_continuation(lm, target.b, "target.b")
        if a[0] == b[0]:
            raise ValueError("Contrastive target: a and b tokenize to the same tokens, so the contrast is always 0")
        return TargetSpec("contrastive", [a, b])
    if isinstance(target, TargetFunction) or (callable(target) and not isinstance(target, (str, list, tuple))):
        spec = target if isinstance(target, TargetFunction) else TargetFunction(target)
        if not callable(spec.fn):
            raise InputTypeError(f"TargetFunction.fn must be callable, got {type(spec.fn).__name__}")
        names = tuple(spec.names)
        if not names or any(not isinstance(n, str) for n in names):
            raise ValueError(f"TargetFunction.names must be a non-empty sequence of strings, got {spec.names!r}")
        empty = isinstance(spec.continuation, (str, list, tuple)) and len(spec.continuation) == 0
        cont = ([], "", []) if empty else tokenize_continuation(lm, spec.continuation, "target.continuation")
        return TargetSpec("function", [cont], fn=spec.fn, names=names)
    return TargetSpec("continuation", [tokenize_continuation(lm, target, "target")])


def tokenize_continuation(lm: Any, value: object, param: str) -> tuple[list[int], str, list[tuple[int, int]]]:
    """(ids, text, byte offsets into text) of a continuation given as text or token ids; clear errors when the
    tokenizer cannot produce it (empty tokenization, ids outside the model's vocabulary, bytes not reproduced)."""
    tok = lm.tokenizer
    vocab = int(lm.vocab_size)
    if isinstance(value, str):
        if value == "":
            raise ValueError(f"{param} is empty: give a non-empty continuation (or target=None to explain the "
                             "model's own generation)")
        ids, offsets = tok.encode_with_offsets(value)
        if not ids:
            raise ValueError(f"{param} {value!r} tokenizes to no tokens with tokenizer {tok.name!r}, so the model "
                             "cannot produce it")
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"{param} {value!r} tokenizes to id(s) {bad[:5]} outside the model's vocabulary "
                             f"[0, {vocab}); tokenizer and model do not match")
        spelled = b"".join(tok.token_bytes(i) for i in ids)
        data = value.encode("utf-8")
        if spelled not in (data, b" " + data):
            raise ValueError(f"the tokenizer cannot produce {param} {value!r} exactly: its tokens spell "
                             f"{spelled.decode('utf-8', errors='replace')!r}")
        return list(ids), value, [tuple(o) for o in offsets]
    if isinstance(value, torch.Tensor):
        value = value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{param} is an empty list of token ids: give at least one token")
        ids = []
        for k, i in enumerate(value):
            if isinstance(i, bool) or not hasattr(i, "__index__"):
                raise ValueError(f"{param}[{k}] must be an int token id, got {type(i).__name__}")
            i = i.__index__()
            if not 0 <= i < vocab:
                raise ValueError(f"{param}[{k}] = {i} is outside the model's vocabulary [0, {vocab})")
            ids.append(i)
        return ids, *_spell(tok, ids)
    raise ValueError(
        f"{param} must be a string, a list of token ids, None, Contrastive(a, b) or a TargetFunction / callable, "
        f"got {type(value).__name__}"
    )


def resolve(lm: Any, spec: TargetSpec, prompt_ids: list[int]) -> ResolvedTarget:
    """Turn a validated spec into a ResolvedTarget; runs the greedy generation for target=None."""
    if spec.kind == "generation":
        gen = lm.generate(list(prompt_ids), max_new_tokens=spec.max_new_tokens, temperature=0.0)
        ids = list(gen.new_ids)
        eos = getattr(lm.tokenizer, "eos_id", None)
        if ids and gen.stop_reason == "eos" or ids and eos is not None and ids[-1] == eos:
            ids = ids[:-1]
        if not ids:
            raise ValueError("the model's greedy generation is empty (it ended with end-of-sequence at once); "
                             "give the target continuation explicitly")
        text, offsets = _spell(lm.tokenizer, ids)
        resolved = _continuation_target(ids, text, offsets, "generation", lm.tokenizer)
        resolved.generation = {"max_new_tokens": spec.max_new_tokens, "stop_reason": gen.stop_reason,
                               "seconds": float(gen.seconds)}
        return resolved
    if spec.kind == "continuation":
        ids, text, offsets = spec.continuations[0]
        return _continuation_target(ids, text, offsets, "continuation", lm.tokenizer)
    if spec.kind == "contrastive":
        (a, ta, _), (b, tb, _) = spec.continuations
        label = f"log p({ta!r}) - log p({tb!r})"

        def contrast(logits: list[torch.Tensor]) -> torch.Tensor:
            return (_token_logprobs(logits[0], a).sum(-1) - _token_logprobs(logits[1], b).sum(-1))[:, None]

        return ResolvedTarget("contrastive", [a, b], [Unit(label, 0, 0, [], [], "value")], [0], contrast,
                              text=label)
    ids, text, _ = spec.continuations[0]
    fn, names = spec.fn, spec.names

    def function(logits: list[torch.Tensor]) -> torch.Tensor:
        ids_t = torch.tensor(ids, dtype=torch.long, device=logits[0].device)
        out = fn(logits[0], ids_t)
        batch = logits[0].shape[0]
        if not isinstance(out, torch.Tensor):
            raise InputTypeError(f"the target function must return a tensor, got {type(out).__name__}")
        if out.ndim == 1 and len(names) == 1:
            out = out[:, None]
        if tuple(out.shape) != (batch, len(names)):
            want = f"[{batch}]" + (f" or [{batch}, 1]" if len(names) == 1 else f" or [{batch}, {len(names)}]")
            raise ValueError(f"the target function returned shape {list(out.shape)}; expected {want} "
                             f"(batch x len(names) = {len(names)})")
        return out

    rows = [Unit(name, 0, 0, [], [], "value") for name in names]
    return ResolvedTarget("function", [ids], rows, [0] * len(rows), function, text=text)


def _continuation_target(ids: list[int], text: str, offsets, kind: str, tok: Any) -> ResolvedTarget:
    data = text.encode("utf-8")
    exact = offsets[-1][1] == len(data)  # False only when token bytes are not valid UTF-8 (decoded lossily)
    rows = [Unit((data[s:e] if exact else tok.token_bytes(t)).decode("utf-8", errors="replace"), s, e, [j], [t],
                 "token") for j, (t, (s, e)) in enumerate(zip(ids, offsets))]

    def token_logprobs(logits: list[torch.Tensor]) -> torch.Tensor:
        return _token_logprobs(logits[0], ids)

    return ResolvedTarget(kind, [ids], rows, list(range(len(ids))), token_logprobs, text=text)


def _token_logprobs(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """log p(ids[j]) under logits[:, j] -> [B, n]."""
    n = len(ids)
    logp = torch.log_softmax(logits[:, :n].float(), dim=-1)
    index = torch.tensor(ids, dtype=torch.long, device=logits.device).view(1, n, 1).expand(logits.shape[0], n, 1)
    return logp.gather(-1, index)[..., 0]


def _spell(tok: Any, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Text of token ids and each token's byte span into that text's bytes (running sums of token bytes)."""
    pieces = [tok.token_bytes(i) for i in ids]
    offsets, pos = [], 0
    for piece in pieces:
        offsets.append((pos, pos + len(piece)))
        pos += len(piece)
    return b"".join(pieces).decode("utf-8", errors="replace"), offsets
