"""Verifiers, one rule per file, registered by name (see base.py for the interface)."""
from .base import Verifier, VerifyResult
from .registry import VERIFIERS, get_verifier, register_verifier
from .greedy import GreedyVerifier
from .speculative_sampling import SpeculativeSamplingVerifier
from .rsd import RecursiveRejectionVerifier
from .spectr import SpecTrVerifier
from .deterministic_tree import DeterministicTreeVerifier

__all__ = ["Verifier", "VerifyResult", "VERIFIERS", "get_verifier", "register_verifier", "GreedyVerifier",
           "SpeculativeSamplingVerifier", "RecursiveRejectionVerifier", "SpecTrVerifier", "DeterministicTreeVerifier"]
