"""MobileSAM (Zhang et al. 2023, "Faster Segment Anything"): SAM with a 5.7M-parameter TinyViT image encoder
distilled from ViT-H, and SAM's own prompt encoder and mask decoder (the paper expects SAM-PD to "benefit from more
efficient variants of SAM, such as MobileSAM"; SAM-PT reports 71.07 J&F with it).

The model code comes from PyPI's ``mobilesam-mirror`` (the MobileSAM repository packaged as the ``mobile_sam``
module, whose TinyViT needs ``timm``); it is a copy of segment-anything's ``Sam`` with a ``TinyViT`` encoder, so it
runs through the same :class:`~sampd_plugin.backends.sam.SamBackend` (``SamPredictor`` steps, the shared-work
decoder, automatic masks). Weights: ``mobile_sam.pt`` from the MobileSAM repository, found like SAM's checkpoints
(:func:`sampd_plugin.backends.checkpoints.resolve_checkpoint`: explicit path, ``$SAMPD_CHECKPOINT_DIR``, our cache, download);
``random_weights=True`` builds the architecture with random (seeded) weights for tests and timings.

This module imports no FiftyOne.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch

from sampd_plugin.backends.sam import SamBackend, build_sam_model

MODEL_NAME = "mobile_sam"


def _registry():
    try:
        with warnings.catch_warnings():  # mobile_sam imports timm's deprecated module paths
            warnings.simplefilter("ignore")
            from mobile_sam import sam_model_registry
    except ImportError as e:
        raise ImportError(
            f"model 'mobile_sam' needs the MobileSAM code: pip install mobilesam-mirror timm ({e})"
        ) from None
    return sam_model_registry


def build_mobile_sam(seed: Optional[int] = 0):
    """MobileSAM's ``Sam`` (``vit_t``: TinyViT encoder, SAM's prompt encoder and decoder) with random weights,
    deterministic for ``seed`` (``None``: the global RNG), in eval mode on the CPU. The global RNG state is left
    untouched when ``seed`` is given."""
    builder = _registry()["vit_t"]
    if seed is None:
        return builder().eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder().eval()


def load_mobile_sam(checkpoint: Optional[str] = None, device=None, half=False, download: bool = True,
                    random_weights: bool = False, seed: int = 0, **backend_kwargs) -> SamBackend:
    """A :class:`SamBackend` over MobileSAM: the ``mobile_sam.pt`` weights (``checkpoint``, else found / downloaded
    as SAM's checkpoints are), or random weights (``random_weights=True``, seeded: timings and tests only, the
    masks are meaningless). Further arguments as :func:`sampd_plugin.backends.sam.load_sam`."""
    if random_weights:
        if checkpoint:
            raise ValueError("pass either a checkpoint or random_weights=True, not both")
        model = build_mobile_sam(seed)
    else:
        model = build_sam_model(MODEL_NAME, checkpoint=checkpoint, download=download,
                                builder=lambda: build_mobile_sam(None))
    return SamBackend(model=model, model_type=MODEL_NAME, device=device, half=half, **backend_kwargs)
