"""Speculative decoding: draft trees, sampling settings shared by draft and target, lossless verifiers,
drafters and the decode loop."""
from .decode import speculative_generate
from .drafters import DRAFTERS, Drafter, get_drafter
from .metrics import SpeculativeGeneration, StepRecord, self_repeat_fraction
from .rng import RandomSource, TorchRandom, enumerate_outcomes
from .sampling import SamplingConfig, check_sampling, probs_from_logits, sample_token
from .tree import DraftTree
from .verifiers import VERIFIERS, Verifier, VerifyResult, get_verifier

__all__ = [
           "DRAFTERS",
           "VERIFIERS",
           "DraftTree",
           "Drafter",
           "RandomSource",
           "SamplingConfig",
           "SpeculativeGeneration",
           "StepRecord",
           "TorchRandom",
           "Verifier",
           "VerifyResult",
           "check_sampling",
           "enumerate_outcomes",
           "get_drafter",
           "get_verifier",
           "probs_from_logits",
           "sample_token",
           "self_repeat_fraction",
           "speculative_generate",
]
