"""Speculative decoding: draft trees, sampling settings shared by draft and target, lossless verifiers."""
from .rng import RandomSource, TorchRandom, enumerate_outcomes
from .sampling import SamplingConfig, check_sampling, probs_from_logits, sample_token
from .tree import DraftTree
from .verifiers import VERIFIERS, Verifier, VerifyResult, get_verifier

__all__ = ["DraftTree", "SamplingConfig", "check_sampling", "probs_from_logits", "sample_token", "RandomSource",
           "TorchRandom", "enumerate_outcomes", "Verifier", "VerifyResult", "VERIFIERS", "get_verifier"]
