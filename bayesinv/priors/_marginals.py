"""Equal-tailed marginal intervals from a ``quantile`` method, shared by the exact mixture posteriors."""

from __future__ import annotations

import torch

__all__ = ["EqualTailedIntervals"]


class EqualTailedIntervals:
    """Mixin: ``interval(level)`` from the class's ``quantile(qs)`` (a list of probabilities -> stacked maps)."""

    def interval(self, level: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
        """Equal-tailed marginal credible interval of probability ``level`` per coordinate."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        lo, hi = self.quantile([(1 - level) / 2, (1 + level) / 2])
        return lo, hi
