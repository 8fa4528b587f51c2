"""Search: keyword, semantic and hybrid search over a tenant's messages, recall of older
messages by meaning for an agent's context, and the embedders that make the vectors.

The embedders load their models on first use, never at import.
"""

from threadline.search.service import (
    Hit,
    Mode,
    Result,
    SemanticUnavailable,
    fuse,
    recall,
    search,
)
from threadline.store.search import Filters

__all__ = ["Filters", "Hit", "Mode", "Result", "SemanticUnavailable", "fuse", "recall", "search"]
