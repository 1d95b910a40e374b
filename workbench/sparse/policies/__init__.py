"""Built-in KV selection policies, one per file; importing this package registers them by name."""
from workbench.sparse.policies.full import Full
from workbench.sparse.policies.h2o import H2O
from workbench.sparse.policies.keyformer import Keyformer
from workbench.sparse.policies.oracle import Oracle
from workbench.sparse.policies.quest import Quest, page_bounds, page_upper_bound
from workbench.sparse.policies.snapkv import SnapKV
from workbench.sparse.policies.streaming_llm import StreamingLLM
from workbench.sparse.policies.tokenselect import TokenSelect

__all__ = [
           "H2O",
           "Full",
           "Keyformer",
           "Oracle",
           "Quest",
           "SnapKV",
           "StreamingLLM",
           "TokenSelect",
           "page_bounds",
           "page_upper_bound",
]
