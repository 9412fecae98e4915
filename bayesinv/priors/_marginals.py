"""What the exact mixture posteriors share: sizes, the evidence, equal-tailed marginal intervals."""

from __future__ import annotations

import torch

__all__ = ["MixturePosteriorBase"]


class MixturePosteriorBase:
    """Mixin for a posterior ``sum_k w_k N(m_k, C_k)`` holding ``weights (K,)``, ``means (K, d)``,
    ``component_log_evidence`` and ``prior_log_weights`` (``(K,)`` or None) and a ``quantile(qs)`` method
    (a list of probabilities -> stacked maps)."""

    weights: torch.Tensor
    means: torch.Tensor
    component_log_evidence: torch.Tensor | None
    prior_log_weights: torch.Tensor | None

    @property
    def num_components(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def log_evidence(self) -> float:
        """``log p(y) = logsumexp_k (log w_k^prior + log p(y|k))`` (needs the component evidences)."""
        if self.component_log_evidence is None or self.prior_log_weights is None:
            raise ValueError("this posterior was built without component evidences and prior weights")
        return float((self.prior_log_weights + self.component_log_evidence).logsumexp(0))

    def interval(self, level: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
        """Equal-tailed marginal credible interval of probability ``level`` per coordinate."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        lo, hi = self.quantile([(1 - level) / 2, (1 + level) / 2])
        return lo, hi
