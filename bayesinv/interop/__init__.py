"""Bridges to other libraries (optional extras). :mod:`bayesinv.interop.deepinv`: deepinv physics."""

__all__: list[str] = []
