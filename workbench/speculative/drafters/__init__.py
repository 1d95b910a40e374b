"""Drafters, one per file, registered by name (see base.py for the interface)."""
from .base import Drafter, check_budget
from .draft_model import DraftModelDrafter
from .draft_state import DraftState, VocabularyMismatchError
from .prompt_lookup import PromptLookupDrafter
from .registry import DRAFTERS, get_drafter, register_drafter

__all__ = ["DRAFTERS", "DraftModelDrafter", "DraftState", "Drafter", "PromptLookupDrafter", "VocabularyMismatchError",
           "check_budget", "get_drafter", "register_drafter"]
