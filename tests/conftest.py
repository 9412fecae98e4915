"""Shared fixtures. Tests never seed torch globally: they pass explicit generators."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
