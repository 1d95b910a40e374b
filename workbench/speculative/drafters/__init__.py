"""Drafters, one per file, registered by name (see base.py for the interface)."""
from .base import Drafter, check_budget
from .draft_model import DraftModelDrafter
from .draft_state import DraftState, VocabularyMismatchError
from .dyspec import DySpecDrafter
from .prompt_lookup import PromptLookupDrafter
from . import registry
from .registry import DRAFTERS, get_drafter, register_drafter
from .token_recycling import TokenRecyclingDrafter

registry.DRAFTER_REGISTRY.load_builtins()  # drafters in files not imported above (each registers itself)

__all__ = ["DRAFTERS", "DraftModelDrafter", "DraftState", "Drafter", "DySpecDrafter", "PromptLookupDrafter",
           "TokenRecyclingDrafter", "VocabularyMismatchError", "check_budget", "get_drafter", "register_drafter"]
