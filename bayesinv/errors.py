"""Exceptions raised by bayesinv.

Every error names the argument at fault and the expected versus the given value, so a user can fix
the call without reading the source. They subclass the built-in exception a caller would expect
(``ValueError`` for bad input, ``RuntimeError`` for numerical failure) so generic handlers still work.
"""

from __future__ import annotations

__all__ = [
    "BayesinvError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "SamplerDivergence",
    "WeightsError",
    "ChecksumMismatch",
    "NoDensityError",
]


class BayesinvError(Exception):
    """Base class of every bayesinv error."""


class ShapeError(BayesinvError, ValueError):
    """A tensor has the wrong shape (the message names the argument, expected and given shapes)."""


class DTypeError(BayesinvError, TypeError):
    """A tensor has the wrong dtype, e.g. complex data passed to an operator on real images."""


class NonFiniteError(BayesinvError, ValueError):
    """A tensor contains NaN or infinite values."""


class SamplerDivergence(BayesinvError, RuntimeError):
    """A sampler's iterate blew up; ``step`` is the index of the first bad step.

    Raised at a step boundary when the iterate holds NaN/inf or has left the prior's range by far
    (``reason`` says which). The iterate before the failure is kept in ``last_good`` (or ``None``) so that
    nothing already computed is lost.
    """

    def __init__(self, sampler: str, step: int, detail: str = "", last_good=None, *,
                 reason: str = "non-finite values in the iterate"):
        self.sampler = sampler
        self.step = step
        self.last_good = last_good
        self.reason = reason
        msg = f"{sampler} diverged at step {step}: {reason}"
        if detail:
            msg += f" ({detail})"
        msg += "; try more steps, a smaller step size or guidance scale."
        super().__init__(msg)


class WeightsError(BayesinvError, FileNotFoundError):
    """Model weights or their metadata are missing or unreadable."""


class ChecksumMismatch(BayesinvError, ValueError):
    """A weights file's SHA-256 differs from the one recorded in SHA256SUMS."""


class NoDensityError(BayesinvError, NotImplementedError):
    """The distribution has no tractable density (e.g. a diffusion prior's ``log_prob``)."""
