"""The integrations lane: optional extras run for real (``pytest -m integrations tests/integrations``).

Every test here carries ``pytest.mark.integrations`` (deselected by the default ``addopts``) and skips
with a stated reason when its extra is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch

#: torchvision's compiled operators; deepinv imports torchvision, whose import registers fake kernels for these
_TORCHVISION_OPS = ("roi_align", "_roi_align_backward", "ps_roi_align", "_ps_roi_align_backward", "roi_pool",
                    "_roi_pool_backward", "ps_roi_pool", "_ps_roi_pool_backward", "nms", "qnms", "qroi_align",
                    "deform_conv2d", "_deform_conv2d_backward")
_SHIM = []


def _torchvision_needs_shim() -> bool:
    """True when the installed torchvision is a CUDA build next to a CPU-only torch.

    pip takes torchvision from PyPI, whose Linux wheels are CUDA builds; next to this project's CPU
    torch their compiled library cannot load and ``import torchvision`` fails on its fake-kernel
    registrations ("operator torchvision::nms does not exist"). Read without importing torchvision.
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    version = (Path(spec.origin).parent / "version.py")
    return version.exists() and "+cu" in version.read_text() and torch.version.cuda is None


def import_deepinv():
    """``import deepinv`` or skip with the reason. On a CUDA torchvision next to CPU torch, the
    torchvision operator names are declared first (placeholders: deepinv's physics never call them),
    so that torchvision's pure-Python parts and deepinv import."""
    if importlib.util.find_spec("deepinv") is None:
        pytest.skip("deepinv is not installed (pip install 'bayesinv[deepinv]')")
    if _torchvision_needs_shim() and not _SHIM:
        library = torch.library.Library("torchvision", "DEF")
        for name in _TORCHVISION_OPS:
            library.define(f"{name}(Tensor x) -> Tensor")
        _SHIM.append(library)
    return importlib.import_module("deepinv")


@pytest.fixture(scope="session")
def deepinv_module():
    """The imported ``deepinv`` (skips when it is missing), see :func:`import_deepinv`."""
    return import_deepinv()
