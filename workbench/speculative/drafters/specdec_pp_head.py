"""The acceptance-prediction head of SpecDec++ and its training (Huang et al., "SpecDec++: Boosting Speculative
Decoding via Adaptive Candidate Lengths", 2024).

The head predicts, for a token the draft model just proposed, the probability that the target ACCEPTS it given
that every earlier token of the chain was accepted. Its input (`head_features`):
    the draft's last hidden state at the position that predicted the token (after the draft's final norm, i.e.
    what its LM head reads) [H], followed by two draft-probability features of the RAW draft distribution
    q = softmax(draft logits) (temperature 1, no top-k / top-p): log q(token) (clamped at -30) and the entropy
    of q (nats).
The features are standardised with the training set's mean and standard deviation (buffers of the head), then go
through an MLP with `hidden` layer widths (hidden=() is logistic regression; the paper uses a small residual MLP
on the hidden state alone, the probability features are our addition) to one logit.

Calibration data (`calibration_data`): for every prompt the target continues it by `new_tokens` tokens (greedy,
or sampled with a seeded generator at temperature > 0); the draft and the target then each run ONCE over prompt +
continuation (teacher forcing: the context every drafted token of a fully accepted chain sees). At every position
j from the prompt's last token on, the draft proposes x_j (argmax of its processed distribution q_j, or a seeded
draw from it) and is labelled
    greedy (temperature 0):  y = 1 iff x_j == argmax p_j;
    sampling:                y = min(1, p_j(x_j) / q_j(x_j))   (the probability speculative sampling accepts x_j),
with p_j, q_j processed by the same temperature / top-k / top-p (`speculative.sampling`). A head predicts
acceptance under the settings it was calibrated with: calibrate at the temperature you decode with.

Training (`fit_acceptance_head`): weighted binary cross-entropy as in the paper, which up-weights the rarer
rejected class:  loss = mean( -y log s - rejected_weight * (1 - y) log(1 - s) ),  s = sigmoid(logit); full-batch
Adam for `epochs` steps, seeded. `train_acceptance_head` = calibration_data + fit, each with a tqdm bar.
`head.save(path)` / `AcceptanceHead.load(path)` store the widths and tensors with torch.save (weights_only-safe).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..sampling import SamplingConfig

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

NUM_PROB_FEATURES = 2


def head_features(hidden: torch.Tensor, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Features [N, H + 2] from normed draft hidden states [N, H], raw draft logits [N, V] and tokens [N]."""
    logq = torch.log_softmax(logits.to(torch.float32), dim=-1)
    logq = torch.where(torch.isfinite(logq), logq, torch.full_like(logq, -1e4))
    q = logq.exp()
    entropy = -(q * logq).sum(-1)
    chosen = logq.gather(-1, tokens.long().view(-1, 1)).squeeze(-1).clamp(min=-30.0)
    return torch.cat([hidden.to(torch.float32), chosen[:, None], entropy[:, None]], dim=-1)


class AcceptanceHead(nn.Module):
    """MLP (hidden widths; () = logistic regression) on standardised features -> logit of acceptance."""

    def __init__(self, in_features: int, hidden: Sequence[int] = ()):
        super().__init__()
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be an int >= 1, got {in_features!r}")
        hidden = tuple(hidden)
        for i, width in enumerate(hidden):
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ValueError(f"hidden[{i}] must be an int >= 1 (a layer width), got {width!r}")
        self.in_features = in_features
        self.hidden = hidden
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Acceptance logits [N] for features [N, in_features]."""
        return self.net((features.to(self.mean.dtype) - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def accept_prob(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted acceptance probabilities [N] (float64)."""
        return torch.sigmoid(self.forward(features).to(torch.float64))

    def save(self, path: str | Path) -> None:
        torch.save({"in_features": self.in_features, "hidden": list(self.hidden), "state_dict": self.state_dict()},
                   str(path))

    @classmethod
    def load(cls, path: str | Path) -> AcceptanceHead:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
        head = cls(int(blob["in_features"]), tuple(int(h) for h in blob["hidden"]))
        head.load_state_dict(blob["state_dict"])
        return head.eval()


def weighted_bce(logits: torch.Tensor, accepted: torch.Tensor, rejected_weight: float) -> torch.Tensor:
    """mean(-y log s - w (1 - y) log(1 - s)), s = sigmoid(logits), y = acceptance label (soft labels allowed)."""
    return -(accepted * nn.functional.logsigmoid(logits)
             + rejected_weight * (1 - accepted) * nn.functional.logsigmoid(-logits)).mean()


def _check_positive(value, name: str, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'} > 0, got {value!r}")


def fit_acceptance_head(features: torch.Tensor, accepted: torch.Tensor, hidden: Sequence[int] = (),
                        rejected_weight: float = 1.0, epochs: int = 300, lr: float = 0.05, seed: int = 0,
                        progress: bool = False, weight_decay: float = 0.0) -> AcceptanceHead:
    """Fit an AcceptanceHead on features [N, D] and acceptance labels [N] in [0, 1] (weighted BCE, Adam;
    `weight_decay` is Adam's L2 penalty on every weight and bias, for small calibration sets)."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty tensor [N, D], got {getattr(features, 'shape', features)!r}")
    if not isinstance(accepted, torch.Tensor) or accepted.shape != features.shape[:1]:
        raise ValueError(f"accepted must be a tensor [N] = [{features.shape[0]}] of labels in [0, 1]")
    if bool(((accepted < 0) | (accepted > 1)).any()):
        raise ValueError("accepted must hold acceptance labels in [0, 1]")
    _check_positive(rejected_weight, "rejected_weight")
    _check_positive(epochs, "epochs", integer=True)
    _check_positive(lr, "lr")
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0
            or not math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    x = features.detach().to(torch.float32)
    y = accepted.detach().to(torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = AcceptanceHead(x.shape[1], hidden)
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0, unbiased=False).clamp(min=1e-6))
    optimiser = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=float(weight_decay))
    steps = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="fit acceptance head", unit="epoch")
    for _ in steps:
        optimiser.zero_grad()
        loss = weighted_bce(head(x), y, rejected_weight)
        loss.backward()
        optimiser.step()
    return head.eval()


def calibration_data(draft: LM, target: LM, prompts: Sequence[str | Sequence[int]], new_tokens: int = 32,
                     temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                     seed: int = 0, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, H + 2], acceptance labels [N]) from draft and target on `prompts` (module docstring)."""
    from workbench.models.generation import prompt_ids as encode_prompt

    from .draft_state import DraftState

    state = DraftState(draft, target)  # checks the vocabularies before any work
    sampling = SamplingConfig(temperature, top_k, top_p)
    _check_positive(new_tokens, "new_tokens", integer=True)
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError("prompts must be a non-empty list of prompts (strings or token-id lists)")
    encoded = [encode_prompt(target, p) for p in prompts]
    generator = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    items = encoded
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(encoded, desc="acceptance calibration", unit="prompt")
    for i, ids in enumerate(items):
        gen = target.generate(ids, max_new_tokens=new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                              seed=None if sampling.greedy else seed + i)
        seq = list(ids) + list(gen.new_ids)
        rows = list(range(len(ids) - 1, len(seq) - 1))
        with torch.no_grad():
            d = draft.forward(seq, output_hidden_states=True)
            hidden = draft._base.norm(d.hidden_states[-1][0, rows]).to("cpu", torch.float32)
            q_logits = state.align(d.logits[0, rows])
            p = sampling.probs(target.forward(seq).logits[0, rows].to("cpu", torch.float32))
        q = sampling.probs(q_logits)
        if sampling.greedy:
            tokens = q.argmax(-1)
            y = (tokens == p.argmax(-1)).to(torch.float32)
        else:
            tokens = torch.multinomial(q, 1, generator=generator).squeeze(-1)
            ratio = p.gather(-1, tokens[:, None]) / q.gather(-1, tokens[:, None])
            y = ratio.squeeze(-1).clamp(max=1.0).to(torch.float32)
        feats.append(head_features(hidden, q_logits, tokens))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def train_acceptance_head(draft: LM, target: LM, prompts: Sequence[str | Sequence[int]], new_tokens: int = 32,
                          temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                          hidden: Sequence[int] = (), rejected_weight: float = 1.0, epochs: int = 300,
                          lr: float = 0.05, seed: int = 0, progress: bool = True) -> AcceptanceHead:
    """Calibrate on `prompts` and fit the head (see the module docstring)."""
    AcceptanceHead(1, hidden)  # checks the widths before any work
    _check_positive(rejected_weight, "rejected_weight")
    _check_positive(epochs, "epochs", integer=True)
    _check_positive(lr, "lr")
    features, labels = calibration_data(draft, target, prompts, new_tokens, temperature, top_k, top_p, seed,
                                        progress)
    return fit_acceptance_head(features, labels, hidden, rejected_weight, epochs, lr, seed, progress)
