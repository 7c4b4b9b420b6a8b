"""Layer alignment: pooled features, linear CKA, probes and position selection (METHOD steps 1-2)."""

from .cka import (CKAMaps, CKAMatrix, CKAValue, NullCKA, cka_maps, cka_matrix, gram_cka, linear_cka,
                  shuffled_baseline)
from .features import collect_features
from .probe import probe_scores
from .result import AlignmentResult
from .select import align, select_positions

__all__ = [
    "AlignmentResult", "CKAMaps", "CKAMatrix", "CKAValue", "NullCKA", "align", "cka_maps", "cka_matrix",
    "collect_features", "gram_cka", "linear_cka", "probe_scores", "select_positions", "shuffled_baseline",
]
