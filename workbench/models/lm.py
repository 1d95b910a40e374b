"""LM: one wrapper over a transformers causal LM with the hooks token-level research needs.

    lm = LM.load("smollm2-135m")                      # asset name, local HF folder, or hub id (online only)
    out = lm.forward(ids, cache=lm.new_cache())       # logits [B, T, V]; out.cache extended in place
    out = lm.forward(nodes, cache=out.cache, position_ids=pos, attention_mask=tree)   # tree attention
    with lm.attention(fn): lm.forward(...)            # every layer's attention through fn
    lm.generate("Once upon a time", max_new_tokens=32)

Gradients: `forward` runs under torch.no_grad unless gradients are wanted: `grad=None` (default) enables
autograd exactly when `inputs_embeds` requires grad (e.g. `e = lm.embed(ids).detach().requires_grad_()`),
`grad=True` forces it on, `grad=False` forces it off.

Every forward adds one call and batch x new tokens to `lm.counters`, and its KV-cache bytes to `lm.kv_traffic`
(written: the new tokens' keys and values; read: every visible cached position once; see cache.KVTraffic).

`logits_to_keep` (int n: the last n fed positions; or a 1-D tensor / list of fed-position indices) computes
logits only there: a long prompt's [B, T, V] logits (V ~ 50k) are what exhausts memory otherwise.
"""
from __future__ import annotations

import contextlib
import inspect
import numbers
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from workbench.models import attention as attention_mod
from workbench.models.cache import KVCache, KVTraffic
from workbench.models.counters import Counters
from workbench.models.masks import causal_mask, sliding_window_mask, to_additive_mask
from workbench.models.options import parse_device, parse_dtype
from workbench.models.outputs import ForwardOutput, Generation


class LM:
    """A causal language model plus its tokenizer (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.text_config = text
        self.num_layers: int = int(text.num_hidden_layers)
        self.num_heads: int = int(text.num_attention_heads)
        self.num_kv_heads: int = int(getattr(text, "num_key_value_heads", None) or self.num_heads)
        self.head_dim: int = int(getattr(text, "head_dim", None) or text.hidden_size // self.num_heads)
        self.hidden_size: int = int(text.hidden_size)
        self.max_context: int = int(text.max_position_embeddings)
        self.vocab_size: int = int(text.vocab_size)
        self.counters = Counters()
        self.kv_traffic = KVTraffic()
        self._base = getattr(model, model.base_model_prefix)
        self._layers = self._base.layers
        self._attention_modules = attention_mod.attention_modules(model)
        if len(self._attention_modules) != self.num_layers:
            raise ValueError(
                f"found {len(self._attention_modules)} attention modules for {self.num_layers} layers in "
                f"{type(model).__name__}; this model family is not supported"
            )
        layer_types = list(getattr(text, "layer_types", None) or [])
        self._sliding_window = getattr(text, "sliding_window", None) if "sliding_attention" in layer_types else None
        self._head_keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path, dtype: str | torch.dtype = "float32", device: str = "cpu") -> LM:
        """Load an asset name ("smollm2-135m"), a local HF model folder, or a hub id (online only).

        dtype: "float32" | "float16" | "bfloat16"; device: "cpu" | "cuda" | "cuda:N". Both are checked before
        anything is read; an unknown name or a folder that is not a model raises ValueError.
        """
        torch_dtype = parse_dtype(dtype)
        torch_device = parse_device(device)
        from transformers import AutoModelForCausalLM

        from workbench.assets import resolve_model
        from workbench.tokenization import load_tokenizer

        source = resolve_model(name_or_path)
        local = isinstance(source, Path) or Path(str(source)).is_dir()
        tokenizer = load_tokenizer(source)
        model = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=torch_dtype, local_files_only=local, attn_implementation="sdpa"
        )
        return cls(model.to(torch_device), tokenizer)

    # ---- properties ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        return (
            f"LM({type(self.model).__name__}, layers={self.num_layers}, heads={self.num_heads}/"
            f"{self.num_kv_heads} kv, head_dim={self.head_dim}, vocab={self.vocab_size}, "
            f"context={self.max_context}, {self.dtype}, {self.device})"
        )

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of keys and values one token occupies in the KV cache, all layers: layers x 2 x H_kv x D x dtype."""
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * self.dtype.itemsize

    def new_cache(self) -> KVCache:
        """An empty KV cache for this model."""
        return KVCache(self.num_layers)

    # ---- pieces --------------------------------------------------------------------------------------------
    def embed(self, input_ids: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor) -> torch.Tensor:
        """Input embeddings [B, T, hidden] of token ids, exactly what the first layer receives (autograd on)."""
        ids = self._ids(input_ids)
        return self.model.get_input_embeddings()(ids)

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from a residual-stream state: final norm, LM head, and final logit softcapping if any."""
        logits = self.model.get_output_embeddings()(self._base.norm(hidden))
        cap = getattr(self.text_config, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    # ---- the forward pass ----------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        position_ids: Sequence[int] | torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        exit_layer: int | None = None,
        inputs_embeds: torch.Tensor | None = None,
        grad: bool | None = None,
        logits_to_keep: int | Sequence[int] | torch.Tensor | None = None,
    ) -> ForwardOutput:
        """Run the model on new tokens, extending `cache` in place (a new cache when None).

        input_ids [T] or [B, T] (list or tensor) or inputs_embeds [B, T, hidden]: exactly one.
        position_ids [T] or [B, T]; default cache.length + arange(T). After `cache.gather` they are yours to pass.
        attention_mask: a custom mask over [cache slots + new tokens] (see workbench.models.masks); default causal.
        output_attentions: per-layer attention probabilities (switches to eager attention for this call; under an
            attention override they are whatever the override returns as its second value).
        output_hidden_states: num_layers + 1 residual-stream states (embeddings, then each layer; pre-final-norm).
        exit_layer k in [0, num_layers]: logits = unembed(hidden_states[k]) (early exit / logit lens). All layers
            still run so the cache stays consistent; k = num_layers equals the normal logits.
        grad: None = autograd only if inputs_embeds requires grad; True / False force it.
        logits_to_keep: None = logits for every fed position [B, T, V]; an int n in [1, T] = the last n positions
            [B, n, V]; a 1-D int tensor or list of K indices in [0, T) (in the order given) = those positions
            [B, K, V]. Only the kept rows go through the LM head (also with exit_layer); the rest is unchanged.
        """
        ids, embeds, batch, new = self._inputs(input_ids, inputs_embeds)
        if cache is None:
            cache = self.new_cache()
        elif not isinstance(cache, KVCache):
            raise ValueError(f"cache must be a KVCache (from lm.new_cache()), got {type(cache).__name__}")
        past = cache.length
        if past == 0:
            cache.clear()  # an emptied cache may still carry another batch size
        elif cache.batch_size != batch:
            raise ValueError(f"input batch size {batch} does not match the cache's batch size {cache.batch_size}")
        positions = self._positions(position_ids, batch, new, past)
        mask = self._mask(attention_mask, batch, new, positions, cache)
        if exit_layer is not None and (isinstance(exit_layer, bool) or not isinstance(exit_layer, int)
                                       or not 0 <= exit_layer <= self.num_layers):
            raise ValueError(f"exit_layer must be None or an int in [0, {self.num_layers}], got {exit_layer!r}")
        keep = self._keep(logits_to_keep, new)
        if grad is None:
            grad = inputs_embeds is not None and inputs_embeds.requires_grad

        self.counters.record(batch * new)
        self.kv_traffic.record(batch, new, past, self.kv_bytes_per_token)
        want_hidden = output_hidden_states or exit_layer is not None
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.enable_grad() if grad else torch.no_grad())
            if output_attentions and self.model.config._attn_implementation != attention_mod.ATTENTION_NAME:
                stack.enter_context(self._implementation("eager"))
            captured = stack.enter_context(self._capture_hidden()) if want_hidden else None
            kwargs = dict(
                input_ids=ids, inputs_embeds=embeds, position_ids=positions, attention_mask=mask,
                past_key_values=cache.hf, use_cache=True, output_attentions=output_attentions,
            )
            if exit_layer is None and (keep is None or self._head_keeps_logits):
                if keep is not None:
                    kwargs["logits_to_keep"] = keep
                result = self.model(**kwargs)
                logits = result.logits
            elif exit_layer is None:  # a head without logits_to_keep: slice its output
                result = self.model(**kwargs)
                logits = result.logits[:, keep]
            else:
                result = self._base(**kwargs)
                hidden_at_exit = captured[exit_layer]
                logits = self.unembed(hidden_at_exit if keep is None else hidden_at_exit[:, keep])
        cache.record_positions(positions)
        attentions = tuple(result.attentions) if output_attentions and result.attentions is not None else None
        hidden = tuple(captured) if output_hidden_states else None
        return ForwardOutput(logits=logits, cache=cache, attentions=attentions, hidden_states=hidden)

    __call__ = forward

    # ---- attention override --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def attention(self, fn: attention_mod.AttentionFn) -> Iterator[LM]:
        """Within the block, every layer's attention calls `fn` (see workbench.models.attention)."""
        if not callable(fn):
            raise ValueError(f"attention: fn must be callable, got {type(fn).__name__}")
        name = attention_mod.register()
        previous = [getattr(m, attention_mod.FN_ATTRIBUTE, None) for m in self._attention_modules]
        for module in self._attention_modules:
            setattr(module, attention_mod.FN_ATTRIBUTE, fn)
        try:
            with self._implementation(name):
                yield self
        finally:
            for module, old in zip(self._attention_modules, previous):
                setattr(module, attention_mod.FN_ATTRIBUTE, old)

    # ---- generation ----------------------------------------------------------------------------------------
    def generate(self, prompt: str | Sequence[int], max_new_tokens: int = 32, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop: str | Sequence[str] | None = None, progress: bool = False) -> Generation:
        """Decode with the KV cache; see workbench.models.generation.generate."""
        from workbench.models.generation import generate

        return generate(self, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                        top_p=top_p, seed=seed, stop=stop, progress=progress)

    # ---- helpers -------------------------------------------------------------------------------------------
    def _ids(self, input_ids) -> torch.Tensor:
        if isinstance(input_ids, torch.Tensor):
            ids = input_ids
        else:
            try:
                ids = torch.as_tensor(input_ids, dtype=torch.long)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"input_ids must be a list of ints, a list of lists or a tensor: {exc}") from None
        if ids.is_floating_point() or ids.dtype == torch.bool or ids.is_complex():
            raise ValueError(f"input_ids must hold integer token ids, got dtype {ids.dtype}")
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"input_ids must have shape [T] or [B, T] with T >= 1, got {tuple(ids.shape)}")
        rows = self.model.get_input_embeddings().num_embeddings
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= rows:
            raise ValueError(f"input_ids must lie in [0, {rows}) (the embedding size), got values in [{lo}, {hi}]")
        return ids.to(self.device, torch.long)

    def _inputs(self, input_ids, inputs_embeds):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if input_ids is not None:
            ids = self._ids(input_ids)
            return ids, None, ids.shape[0], ids.shape[1]
        embeds = inputs_embeds
        if not isinstance(embeds, torch.Tensor) or not embeds.is_floating_point():
            raise ValueError("inputs_embeds must be a float tensor [B, T, hidden] or [T, hidden]")
        if embeds.ndim == 2:
            embeds = embeds[None]
        if embeds.ndim != 3 or embeds.shape[-1] != self.hidden_size or embeds.shape[1] == 0:
            raise ValueError(
                f"inputs_embeds must have shape [B, T, {self.hidden_size}] or [T, {self.hidden_size}], "
                f"got {tuple(inputs_embeds.shape)}"
            )
        return None, embeds.to(self.device), embeds.shape[0], embeds.shape[1]

    def _keep(self, logits_to_keep, new: int) -> torch.Tensor | None:
        """logits_to_keep as a 1-D long tensor of fed-position indices (None: keep all)."""
        if logits_to_keep is None:
            return None
        if isinstance(logits_to_keep, bool):
            raise ValueError(f"logits_to_keep must be None, an int in [1, {new}] or 1-D position indices, got a bool")
        if isinstance(logits_to_keep, numbers.Integral):
            logits_to_keep = int(logits_to_keep)
            if not 1 <= logits_to_keep <= new:
                raise ValueError(f"logits_to_keep must be an int in [1, {new}] (the number of fed tokens), "
                                 f"got {logits_to_keep}")
            return torch.arange(new - logits_to_keep, new, device=self.device)
        try:
            keep = torch.as_tensor(logits_to_keep, device=self.device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"logits_to_keep must be None, an int or 1-D position indices: {exc}") from None
        if keep.is_floating_point() or keep.dtype == torch.bool or keep.ndim != 1 or keep.numel() == 0:
            raise ValueError(f"logits_to_keep must be a non-empty 1-D tensor of int positions in [0, {new}), got "
                             f"dtype {keep.dtype} and shape {tuple(keep.shape)}")
        if int(keep.min()) < 0 or int(keep.max()) >= new:
            raise ValueError(f"logits_to_keep positions must lie in [0, {new}) (the fed tokens), got values in "
                             f"[{int(keep.min())}, {int(keep.max())}]")
        return keep.long()

    def _positions(self, position_ids, batch: int, new: int, past: int) -> torch.Tensor:
        if position_ids is None:
            positions = torch.arange(past, past + new, device=self.device)[None]
        else:
            positions = torch.as_tensor(position_ids, device=self.device)
            if positions.is_floating_point() or positions.dtype == torch.bool:
                raise ValueError(f"position_ids must be integers, got dtype {positions.dtype}")
            if positions.ndim == 1:
                positions = positions[None]
            if positions.ndim != 2 or positions.shape[1] != new or positions.shape[0] not in (1, batch):
                raise ValueError(
                    f"position_ids must have shape [{new}] or [B, {new}] (B in (1, {batch})), "
                    f"got {tuple(positions.shape)}"
                )
            positions = positions.long()
            if int(positions.min()) < 0:
                raise ValueError(f"position_ids must be >= 0, got min {int(positions.min())}")
        last = int(positions.max())
        if last >= self.max_context:
            raise ValueError(
                f"input too long: positions up to {last} ({last + 1} tokens) exceed the model's context of "
                f"{self.max_context} tokens (max_position_embeddings)"
            )
        return positions

    def _mask(self, attention_mask, batch: int, new: int, positions: torch.Tensor, cache: KVCache):
        """The mask to hand to transformers: None (plain causal), a 4D additive mask, or per layer type."""
        total = cache.length + new
        custom = None
        if attention_mask is not None:
            custom = to_additive_mask(attention_mask, batch, new, total, self.dtype, self.device)
        if self._sliding_window is None:
            return custom
        key_positions = None
        if cache.positions is not None:
            key_positions = torch.cat([cache.positions.to(self.device).expand(positions.shape[0], -1), positions], 1)
            in_order = bool((key_positions == torch.arange(total, device=self.device)).all())
            if custom is None and in_order:
                return None  # positions equal slots: transformers' own sliding-window masks are right
        if custom is None:
            custom = causal_mask(new, total, self.dtype, self.device)
        window = sliding_window_mask(custom, self._sliding_window, positions, key_positions)
        return {"full_attention": custom, "sliding_attention": window}

    @contextlib.contextmanager
    def _implementation(self, name: str) -> Iterator[None]:
        previous = self.model.config._attn_implementation
        if previous == name:
            yield
            return
        self.model.set_attn_implementation(name)
        try:
            yield
        finally:
            self.model.set_attn_implementation(previous)

    @contextlib.contextmanager
    def _capture_hidden(self) -> Iterator[list[torch.Tensor]]:
        states: list[torch.Tensor] = []

        def before_first(module, args, kwargs):
            states.append(args[0] if args else kwargs["hidden_states"])

        def after(module, args, output):
            states.append(output[0] if isinstance(output, tuple) else output)

        handles = [self._layers[0].register_forward_pre_hook(before_first, with_kwargs=True)]
        handles += [layer.register_forward_hook(after) for layer in self._layers]
        try:
            yield states
        finally:
            for handle in handles:
                handle.remove()
