"""LM.load: folders written by save_tiny_model load back identically; bad options fail before any work."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.models import LM, save_tiny_model, tiny_lm
from workbench.models.tiny import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_tiny_model_loads_back_identically(tmp_path, arch):
    folder = save_tiny_model(tmp_path / arch, arch=arch, seed=3)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()}
    memory = tiny_lm(arch, seed=3)
    loaded = LM.load(folder)
    assert type(loaded.model) is type(memory.model)
    assert (loaded.num_layers, loaded.num_heads, loaded.num_kv_heads, loaded.head_dim, loaded.vocab_size,
            loaded.max_context) == (2, 4, 2, 8, 257, 256)
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    text = "héllo <eos> wörld"
    assert loaded.tokenizer.encode(text) == memory.tokenizer.encode(text)
    assert loaded.tokenizer.eos_id == memory.tokenizer.eos_id == 256
    ids = memory.tokenizer.encode(text)
    torch.testing.assert_close(loaded.forward(ids).logits, memory.forward(ids).logits, atol=0, rtol=0)
    assert loaded.generate(text, max_new_tokens=5).new_ids == memory.generate(text, max_new_tokens=5).new_ids


def test_tiny_models_are_seeded():
    a, b, c = tiny_lm("qwen2", seed=1), tiny_lm("qwen2", seed=1), tiny_lm("qwen2", seed=2)
    ids = [1, 2, 3]
    assert torch.equal(a.forward(ids).logits, b.forward(ids).logits)
    assert not torch.equal(a.forward(ids).logits, c.forward(ids).logits)
    with pytest.raises(ValueError, match="arch must be one of"):
        tiny_lm("gpt2")


def test_load_in_reduced_precision(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    lm = LM.load(folder, dtype="bfloat16")
    assert lm.dtype == torch.bfloat16
    reference = LM.load(folder).forward([1, 2, 3]).logits
    assert (lm.forward([1, 2, 3]).logits.float() - reference).abs().max() < 0.1


@pytest.mark.parametrize("dtype", ["float64", "fp16", "int8", torch.float64])
def test_bad_dtype_is_refused_before_resolving(dtype):
    # the name is not an asset either: the dtype error must come first, before any lookup or fetch
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float16', 'bfloat16'\]"):
        LM.load("no-such-model-anywhere", dtype=dtype)


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "cpu:0"])
def test_bad_device_is_refused(device):
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        LM.load("no-such-model-anywhere", device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when no GPU is present")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        LM.load("no-such-model-anywhere", device="cuda")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="is not a model folder"):
        LM.load(tmp_path)


def test_unknown_name_lists_the_assets():
    with pytest.raises(ValueError, match="smollm2-135m"):
        LM.load("no-such-model-anywhere")


def test_generation_result_round_trips_through_json(llama):
    g = llama.generate("ab", max_new_tokens=3)
    assert json.loads(json.dumps(g.to_dict()))["new_ids"] == g.new_ids
