"""Built-in KV selection policies, one per file; importing this package registers them by name."""
from workbench.sparse.policies.fasa import FASA
from workbench.sparse.policies.full import Full
from workbench.sparse.policies.h2o import H2O
from workbench.sparse.policies.keyformer import Keyformer
from workbench.sparse.policies.landmark import Landmark
from workbench.sparse.policies.oracle import Oracle
from workbench.sparse.policies.quest import Quest, page_bounds, page_upper_bound
from workbench.sparse.policies.snapkv import SnapKV
from workbench.sparse.policies.spatten import SpAtten
from workbench.sparse.policies.streaming_llm import StreamingLLM
from workbench.sparse.policies.tokenselect import TokenSelect
from workbench.sparse.policies.zero_tprune import ZeroTPrune
from workbench.sparse.registry import SELECTOR_REGISTRY

SELECTOR_REGISTRY.load_builtins()  # policies in files not imported above (each new file registers itself)

__all__ = [
           "FASA",
           "H2O",
           "Full",
           "Keyformer",
           "Landmark",
           "Oracle",
           "Quest",
           "SnapKV",
           "SpAtten",
           "StreamingLLM",
           "TokenSelect",
           "ZeroTPrune",
           "page_bounds",
           "page_upper_bound",
]
