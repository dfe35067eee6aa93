"""Model names -> promptable segmenters (:class:`~sampd_plugin.backends.base.PromptableSegmenter`), for the SDK and
the operators.

=============  ===========================================================================================
``vit_h``      SAM ViT-H (the paper's model), ``vit_l``, ``vit_b``: :func:`sampd_plugin.backends.sam.load_sam`
               (checkpoint: explicit path, ``$SAMPD_CHECKPOINT_DIR``, the FiftyOne zoo cache, or a download)
``mobile_sam`` MobileSAM (TinyViT encoder, SAM's decoder): :func:`sampd_plugin.backends.mobile_sam.load_mobile_sam`
               (checkpoint ``mobile_sam.pt``: explicit path, ``$SAMPD_CHECKPOINT_DIR``, cache, or a download)
``tiny``       a randomly initialised tiny SAM (:func:`sampd_plugin.backends.tiny.tiny_backend`): real code
               path and shapes, meaningless masks (tests, CPU smoke runs); automatic masks from an 8x8 grid
``synthetic``  :class:`sampd_plugin.backends.synthetic.SyntheticSegmenter`, built per sample from the scene of
               a dataset made by :func:`sampd_plugin.synthetic.make_dataset` (demo, tests; not SAM)
=============  ===========================================================================================

Device: :func:`sampd_plugin.backends.base.resolve_device` (``None`` / ``"auto"``: ``cuda`` when available, so a
delegated worker on a GPU machine uses its GPU). torch is imported only when a model is built or a device resolved.
This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import Optional

SAM_MODELS = ("vit_h", "vit_l", "vit_b")
#: models whose weights are a checkpoint file (:mod:`sampd_plugin.backends.checkpoints`)
CHECKPOINT_MODELS = SAM_MODELS + ("mobile_sam",)
MODELS = CHECKPOINT_MODELS + ("tiny", "synthetic")
#: automatic-mask grid of the tiny model (its masks are meaningless; a small grid keeps the code path cheap)
TINY_POINTS_PER_SIDE = 8
MODEL_LABELS = {
    "vit_h": "SAM ViT-H (paper; 2.4 GB checkpoint)",
    "vit_l": "SAM ViT-L (1.2 GB checkpoint)",
    "vit_b": "SAM ViT-B (375 MB checkpoint)",
    "mobile_sam": "MobileSAM (TinyViT encoder; 40 MB checkpoint, needs mobilesam-mirror + timm)",
    "tiny": "tiny random SAM (code path only: masks are meaningless)",
    "synthetic": "synthetic segmenter (generated datasets only: not SAM)",
}


def resolve_device(device: Optional[str] = None) -> str:
    """:func:`sampd_plugin.backends.base.resolve_device` as a string (imports torch on first use)."""
    from sampd_plugin.backends.base import resolve_device as _resolve

    return str(_resolve(device))


def is_segmenter(model) -> bool:
    """Whether ``model`` is a segmenter instance (bring your own) rather than a model name."""
    return not isinstance(model, str) and hasattr(model, "encode") and hasattr(model, "decode")


def model_name(model) -> str:
    """The name recorded for a model: the name itself, or ``"custom:<module>.<Class>"`` for an instance."""
    return custom_name(model) if is_segmenter(model) else model


def check_model(model, checkpoint: Optional[str] = None):
    """Raises ``ValueError`` for an unknown model name, a checkpoint given for a model that takes none, or an object
    that is neither a name nor a :class:`~sampd_plugin.backends.base.PromptableSegmenter`."""
    if is_segmenter(model):
        from sampd_plugin.backends.base import PromptableSegmenter

        if not isinstance(model, PromptableSegmenter):
            raise ValueError(f"model must be a model name or a PromptableSegmenter, got a {type(model).__name__}")
        if checkpoint:
            raise ValueError(f"a segmenter instance takes no checkpoint (got {checkpoint!r})")
        return
    if isinstance(model, str) and model.startswith("custom:"):
        raise ValueError(f"model {model!r} is a segmenter instance recorded by name: pass the instance itself "
                         "(model=<your PromptableSegmenter>)")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {list(MODELS)}")
    if checkpoint and model not in CHECKPOINT_MODELS:
        raise ValueError(f"model {model!r} takes no checkpoint (got {checkpoint!r})")


def checkpoint_status(model: str, checkpoint: Optional[str] = None) -> Optional[str]:
    """Where the checkpoint of ``model`` will come from, in words (``None`` for models without one); never
    downloads. Raises ``FileNotFoundError`` for an explicit path that does not exist."""
    if model not in CHECKPOINT_MODELS:
        return None
    from sampd_plugin.backends import checkpoints

    try:
        return f"checkpoint: {checkpoints.resolve_checkpoint(model, checkpoint, download=False)}"
    except checkpoints.CheckpointNotFoundError:
        if checkpoint:
            raise
        info = checkpoints.checkpoint_info(model)
        return f"checkpoint {info.filename} is not on this machine: it is downloaded on first use ({info.url})"


def model_warning(model: str, checkpoint: Optional[str] = None, device: Optional[str] = None) -> Optional[str]:
    """A warning, in words, when a SAM ``model`` cannot run well on *this* machine: its checkpoint is not here (a
    download of ``size`` on first use, which fails offline) and ``device`` resolves to the CPU (minutes per frame).
    ``None`` when the checkpoint is here, a GPU is, or the model takes no checkpoint. Never downloads."""
    if model not in SAM_MODELS:
        return None
    from sampd_plugin.backends import checkpoints

    try:
        checkpoints.resolve_checkpoint(model, checkpoint, download=False)
        return None
    except (checkpoints.CheckpointNotFoundError, FileNotFoundError):
        pass
    if device not in (None, "", "auto", "cpu") or resolve_device(device) != "cpu":
        return None
    info = checkpoints.checkpoint_info(model)
    size = f"{info.size_bytes / 2**30:.1f} GB" if info.size_bytes else "large"
    return (f"'{model}' on this machine: its checkpoint {info.filename} ({size}) is not here and there is no GPU. "
            "Run here, it would first download the checkpoint (which fails offline), then take minutes per frame on "
            "the CPU. Schedule it for a GPU worker that has the checkpoint (`fiftyone delegated launch` with "
            "$SAMPD_CHECKPOINT_DIR set), or give the checkpoint's path.")


class BackendCache:
    """Builds backends by model name and keeps the last one (SAM weights are loaded once per job; the synthetic
    segmenter is rebuilt per sample from that sample's scene). A segmenter instance is used as given (``model``
    is then its :func:`model_name`, ``device`` its own)."""

    def __init__(self, model, checkpoint: Optional[str] = None, device: Optional[str] = None):
        check_model(model, checkpoint)
        self.model = model_name(model)
        self.checkpoint = checkpoint
        self._backend = model if is_segmenter(model) else None
        self.device = str(model.device) if is_segmenter(model) else resolve_device(device)

    def get(self, scene=None):
        """The backend; ``synthetic`` needs the :class:`~sampd_plugin.synthetic.scene.SyntheticScene` it segments
        (rebuilt per video)."""
        if self.model == "synthetic":
            from sampd_plugin.backends.synthetic import SyntheticSegmenter

            if scene is None:
                raise ValueError(
                    "model 'synthetic' only segments videos made by sampd_plugin.synthetic.make_dataset (no "
                    "'synthetic' scene parameters); choose a SAM model"
                )
            return SyntheticSegmenter(scene, device=self.device)
        if self._backend is None:
            if self.model == "tiny":
                from sampd_plugin.backends.tiny import tiny_backend

                self._backend = tiny_backend(seed=0, device=self.device, points_per_side=TINY_POINTS_PER_SIDE)
            elif self.model == "mobile_sam":
                from sampd_plugin.backends.mobile_sam import load_mobile_sam

                self._backend = load_mobile_sam(checkpoint=self.checkpoint, device=self.device)
            else:
                from sampd_plugin.backends.sam import load_sam

                self._backend = load_sam(self.model, checkpoint=self.checkpoint, device=self.device)
        self._backend.reset_counters()
        return self._backend


def load_segmenter(spec: str, **kwargs):
    """A :class:`~sampd_plugin.backends.base.PromptableSegmenter` from an import path ``"package.module:Name"``
    (bring your own segmenter: MobileSAM, SAM-HQ, EfficientSAM, a research model): ``Name`` is an instance, or a
    class / factory called with ``kwargs``. Returns ``(instance, name)`` with ``name = "custom:package.module.Name"``
    (what run records store). ``ValueError`` / ``ImportError`` name the spec."""
    from importlib import import_module

    from sampd_plugin.backends.base import PromptableSegmenter

    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"a custom segmenter is given as 'package.module:Name', got {spec!r}")
    try:
        obj = import_module(module)
    except ImportError as e:
        raise ImportError(f"cannot import {module!r} for the segmenter {spec!r}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module!r} has no {attr!r} (segmenter {spec!r})") from None
    if not isinstance(obj, PromptableSegmenter):
        if not callable(obj):
            raise ValueError(f"{spec!r} is neither a PromptableSegmenter nor a class / factory making one")
        obj = obj(**kwargs)
    if not isinstance(obj, PromptableSegmenter):
        raise ValueError(f"{spec!r} made a {type(obj).__name__}, not a "
                         "sampd_plugin.backends.base.PromptableSegmenter")
    return obj, f"custom:{module}.{attr}"


def custom_name(segmenter) -> str:
    """The name recorded for a segmenter instance: ``"custom:<module>.<Class>"``."""
    cls = type(segmenter)
    return f"custom:{cls.__module__}.{cls.__qualname__}"
