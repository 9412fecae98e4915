"""The integrations lane: optional extras run for real (``pytest -m integrations tests/integrations``).

Every test here carries ``pytest.mark.integrations`` (deselected by the default ``addopts``) and skips
with a stated reason when its extra is not installed, except under ``BAYESINV_REQUIRE_EXTRAS=1`` (set
by ``.ci/run``'s integrations lane, where the extras are installed): there a missing extra fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
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


def declare_torchvision_ops() -> None:
    """On a CUDA torchvision next to CPU torch (see :func:`_torchvision_needs_shim`), declare torchvision's
    operator names (placeholders: nothing tested here calls them) so that its pure-Python parts import;
    deepinv imports torchvision, and diffusers does when it is installed. A no-op otherwise."""
    if _torchvision_needs_shim() and not _SHIM:
        library = torch.library.Library("torchvision", "DEF")
        for name in _TORCHVISION_OPS:
            library.define(f"{name}(Tensor x) -> Tensor")
        _SHIM.append(library)


@pytest.fixture(scope="session")
def torchvision_shim():
    """:func:`declare_torchvision_ops` before a test imports torchvision (through deepinv or diffusers)."""
    declare_torchvision_ops()


# before anything in this lane can import torchvision (a failed import is not retried)
declare_torchvision_ops()


def import_deepinv():
    """``import deepinv`` or skip with the reason (fail in the CI lane)."""
    return require_module("deepinv", "deepinv")


def require_module(module: str, extra: str):
    """Import ``module`` (of the extra ``extra``), or skip naming the extra; fail instead in the CI lane."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed (pip install 'bayesinv[{extra}]')"
        if os.environ.get("BAYESINV_REQUIRE_EXTRAS") == "1":
            pytest.fail(message + " but BAYESINV_REQUIRE_EXTRAS=1")
        pytest.skip(message)
    return importlib.import_module(module)


@pytest.fixture(scope="session")
def require():
    """:func:`require_module` as a fixture."""
    return require_module


@pytest.fixture(scope="session")
def deepinv_module():
    """The imported ``deepinv`` (skips when it is missing), see :func:`import_deepinv`."""
    return import_deepinv()
