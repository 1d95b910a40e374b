"""Drafters, one per file, registered by name (see base.py for the interface)."""
from .base import Drafter, check_budget
from .prompt_lookup import PromptLookupDrafter
from .registry import DRAFTERS, get_drafter, register_drafter

__all__ = ["DRAFTERS", "Drafter", "PromptLookupDrafter", "check_budget", "get_drafter", "register_drafter"]
