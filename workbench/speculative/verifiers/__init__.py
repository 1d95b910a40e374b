"""Verifiers, one rule per file, registered by name (see base.py for the interface)."""
from .base import Verifier, VerifyResult
from .deterministic_tree import DeterministicTreeVerifier
from .greedy import GreedyVerifier
from . import registry
from .registry import VERIFIERS, get_verifier, register_verifier
from .rsd import RecursiveRejectionVerifier
from .spectr import SpecTrVerifier
from .speculative_sampling import SpeculativeSamplingVerifier

registry.VERIFIER_REGISTRY.load_builtins()  # verifiers in files not imported above (each registers itself)

__all__ = [
           "VERIFIERS",
           "DeterministicTreeVerifier",
           "GreedyVerifier",
           "RecursiveRejectionVerifier",
           "SpecTrVerifier",
           "SpeculativeSamplingVerifier",
           "Verifier",
           "VerifyResult",
           "get_verifier",
           "register_verifier",
]
