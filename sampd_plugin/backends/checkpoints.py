"""Official SAM checkpoint files: where they are found, how they are downloaded, and reading their tensors.

:func:`resolve_checkpoint` looks for a checkpoint in this order:

1. an explicit path (``checkpoint=PATH``, the CLI's ``--checkpoint PATH``): it must exist;
2. ``$SAMPD_CHECKPOINT_DIR/<official file name>`` (e.g. ``sam_vit_h_4b8939.pth``);
3. the FiftyOne model zoo cache, ``fo.config.model_zoo_dir/<official file name>`` (zoo models
   ``segment-anything-vit{h,l,b}-torch``), when FiftyOne is installed;
4. our own cache, ``$SAMPD_CACHE_DIR`` or ``~/.cache/sampd``;
5. a download (``download=True``): through the FiftyOne zoo's downloader (progress bar, same cache as FiftyOne's own
   SAM models) when FiftyOne is installed, else ``torch.hub.download_url_to_file`` into our own cache.

If all fail (e.g. offline), :class:`CheckpointNotFoundError` says which file is missing, its URL, and where to put it.

Integrity. Meta publishes no checksums for these files. The sizes below come from FiftyOne's zoo manifest
(``fiftyone/zoo/models/manifest-torch.json``, ``size_bytes``); a downloaded or zoo-cached file of another size is an
interrupted download (FiftyOne's downloader writes in place) and is fetched again. The six hex digits in each file
name are, by the files' naming convention, the start of the file's MD5; that is checked after our own downloads as
a warning only (it is not a published checksum). Finally a checkpoint must load (``torch.load`` with
``weights_only=True``) and match the model's ``state_dict`` exactly, else :class:`CheckpointLoadError`.

FiftyOne is imported lazily, inside the functions that use it; this module works without FiftyOne installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import warnings
from typing import Optional

import torch

logger = logging.getLogger(__name__)

URL_ROOT = "https://dl.fbaipublicfiles.com/segment_anything/"

#: environment variables
CHECKPOINT_DIR_ENV = "SAMPD_CHECKPOINT_DIR"
CACHE_DIR_ENV = "SAMPD_CACHE_DIR"


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """An official SAM checkpoint.

    Attributes:
        model_type: segment-anything's ``sam_model_registry`` key (``mobile_sam``: MobileSAM's ``vit_t``)
        filename: official file name
        url: official download URL
        zoo_name: FiftyOne model zoo name (``None``: not in FiftyOne's zoo)
        size_bytes: file size, from FiftyOne's zoo manifest (``None``: unknown, any size is accepted)
    """

    model_type: str
    filename: str
    url: str
    zoo_name: Optional[str]
    size_bytes: Optional[int]

    @property
    def md5_prefix(self) -> Optional[str]:
        """The six hex digits of the file name (naming convention: the start of the file's MD5), or ``None`` for
        a file not named that way."""
        tail = os.path.splitext(self.filename)[0].rsplit("_", 1)[-1]
        return tail if len(tail) == 6 and all(c in "0123456789abcdef" for c in tail) else None


CHECKPOINTS = {
    info.model_type: info
    for info in (
        CheckpointInfo("vit_h", "sam_vit_h_4b8939.pth", URL_ROOT + "sam_vit_h_4b8939.pth",
                       "segment-anything-vith-torch", 2564550879),
        CheckpointInfo("vit_l", "sam_vit_l_0b3195.pth", URL_ROOT + "sam_vit_l_0b3195.pth",
                       "segment-anything-vitl-torch", 1249524607),
        CheckpointInfo("vit_b", "sam_vit_b_01ec64.pth", URL_ROOT + "sam_vit_b_01ec64.pth",
                       "segment-anything-vitb-torch", 375042383),
        # MobileSAM (Zhang et al. 2023): TinyViT image encoder distilled from ViT-H, SAM's prompt encoder and mask
        # decoder; the weights file of its repository (not in FiftyOne's zoo, no published size or checksum)
        CheckpointInfo("mobile_sam", "mobile_sam.pt",
                       "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt", None, None),
    )
}
#: segment-anything's aliases
MODEL_TYPE_ALIASES = {"default": "vit_h", "h": "vit_h", "l": "vit_l", "b": "vit_b"}


class CheckpointNotFoundError(FileNotFoundError):
    """A SAM checkpoint is neither on disk nor downloadable; the message says where to put it."""


class CheckpointLoadError(RuntimeError):
    """A SAM checkpoint file exists but cannot be loaded into the model (corrupt, truncated, other model type)."""


def checkpoint_info(model_type: str) -> CheckpointInfo:
    """The official checkpoint of ``model_type`` (``vit_h``, ``vit_l``, ``vit_b``, ``mobile_sam``;
    ``default`` = ``vit_h``)."""
    key = MODEL_TYPE_ALIASES.get(str(model_type).lower(), str(model_type).lower())
    try:
        return CHECKPOINTS[key]
    except KeyError:
        raise ValueError(
            f"unknown SAM model type {model_type!r}; expected one of {sorted(CHECKPOINTS)}"
        ) from None


def cache_dir() -> str:
    """Our own download cache: ``$SAMPD_CACHE_DIR``, else ``~/.cache/sampd``."""
    return os.path.expanduser(os.environ.get(CACHE_DIR_ENV) or os.path.join("~", ".cache", "sampd"))


# --- FiftyOne zoo (lazy) -------------------------------------------------------------------------------------------
def _import_fiftyone():
    """``(fiftyone, fiftyone.zoo.models)``, or ``None`` when FiftyOne is not installed."""
    try:
        import fiftyone as fo
        import fiftyone.zoo.models as fozm
    except ImportError:
        return None
    return fo, fozm


def _zoo_location(info: CheckpointInfo):
    """``(path, size_bytes)`` of the checkpoint in FiftyOne's model zoo cache, or ``None`` when FiftyOne is not
    installed or its zoo does not know the model."""
    mods = _import_fiftyone() if info.zoo_name else None
    if mods is None:
        return None
    fo, fozm = mods
    try:
        model = fozm.get_zoo_model(info.zoo_name)
        path = model.get_path_in_dir(fo.config.model_zoo_dir)
    except Exception as e:  # an old FiftyOne without the SAM models, a broken manifest, ...
        logger.debug("FiftyOne zoo lookup of %s failed: %s", info.zoo_name, e)
        return None
    if path is None:
        return None
    return path, getattr(model, "size_bytes", None) or info.size_bytes


def _download_with_zoo(info: CheckpointInfo, overwrite: bool = False) -> str:
    """Downloads the checkpoint with FiftyOne's zoo downloader (progress bar) into ``fo.config.model_zoo_dir``."""
    _, fozm = _import_fiftyone()
    _, path = fozm.download_zoo_model(info.zoo_name, overwrite=overwrite)
    return path


def _download_url(url: str, dst: str) -> None:
    """Downloads ``url`` to ``dst`` (atomically: torch.hub writes a temporary file and renames it)."""
    from torch.hub import download_url_to_file

    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    download_url_to_file(url, dst, progress=True)


def _md5_prefix_ok(path: str, prefix: str) -> bool:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            md5.update(chunk)
    return md5.hexdigest().startswith(prefix)


def _size_ok(path: str, size_bytes: Optional[int]) -> bool:
    return os.path.isfile(path) and (not size_bytes or os.path.getsize(path) == size_bytes)


# --- resolution ----------------------------------------------------------------------------------------------------
def _not_found(info: CheckpointInfo, zoo_path: Optional[str], reason: str) -> CheckpointNotFoundError:
    env_dir = os.environ.get(CHECKPOINT_DIR_ENV)
    env_line = (
        f"  - {os.path.join(env_dir, info.filename)}   ({CHECKPOINT_DIR_ENV} is set to {env_dir})"
        if env_dir
        else f"  - $SAMPD_CHECKPOINT_DIR/{info.filename}   (set {CHECKPOINT_DIR_ENV} to a folder holding it)"
    )
    where = [env_line]
    if zoo_path:
        where.append(f"  - {zoo_path}   (FiftyOne model zoo cache, zoo model {info.zoo_name})")
    else:
        where.append(f"  - {os.path.join(cache_dir(), info.filename)}   (sampd cache; set {CACHE_DIR_ENV} to move it)")
    where.append("  - anywhere, and pass --checkpoint PATH (checkpoint=PATH in the SDK)")
    size = f" ({info.size_bytes / 1e6:.0f} MB)" if info.size_bytes else ""
    return CheckpointNotFoundError(
        f"SAM checkpoint {info.filename} ({info.model_type}) not found: {reason}.\n"
        f"Download it from {info.url}{size} and put it at one of:\n" + "\n".join(where)
    )


def resolve_checkpoint(model_type: str = "vit_h", checkpoint: Optional[str] = None, download: bool = True) -> str:
    """Path of the SAM checkpoint to load (see the module docstring for the search order).

    Args:
        model_type: ``vit_h``, ``vit_l``, ``vit_b`` or ``mobile_sam`` (ignored when ``checkpoint`` is given)
        checkpoint: explicit path; it must exist
        download: whether a missing official checkpoint may be downloaded

    Raises:
        CheckpointNotFoundError: the explicit path does not exist, or the official checkpoint is nowhere on disk and
            cannot be downloaded (offline, ``download=False``); the message names the file, its URL and where to put
            it
    """
    if checkpoint is not None:
        path = os.path.abspath(os.path.expanduser(os.fspath(checkpoint)))
        if not os.path.isfile(path):
            raise CheckpointNotFoundError(f"SAM checkpoint {path} (given explicitly) does not exist")
        return path

    info = checkpoint_info(model_type)
    env_dir = os.environ.get(CHECKPOINT_DIR_ENV)
    if env_dir:
        path = os.path.join(os.path.expanduser(env_dir), info.filename)
        if os.path.isfile(path):
            return path

    zoo = _zoo_location(info)
    zoo_path = zoo[0] if zoo else None
    partial = None
    if zoo and os.path.isfile(zoo_path):
        if _size_ok(zoo_path, zoo[1]):
            return zoo_path
        partial = f"{zoo_path} has {os.path.getsize(zoo_path)} bytes, expected {zoo[1]} (interrupted download?)"

    own = os.path.join(cache_dir(), info.filename)
    if _size_ok(own, info.size_bytes):
        return own

    if not download:
        raise _not_found(info, zoo_path, (partial + "; " if partial else "") + "downloading is disabled (download=False)")
    if partial:
        logger.warning("%s: downloading it again", partial)

    if zoo:
        try:
            path = _download_with_zoo(info, overwrite=os.path.isfile(zoo_path))
        except Exception as e:
            raise _not_found(info, zoo_path, f"downloading it with the FiftyOne zoo failed ({type(e).__name__}: {e})") from e
        if not _size_ok(path, zoo[1]):
            size = os.path.getsize(path) if os.path.isfile(path) else 0
            raise _not_found(info, zoo_path, f"the download to {path} is incomplete ({size} of {zoo[1]} bytes)")
        return path

    try:
        _download_url(info.url, own)
    except Exception as e:
        raise _not_found(info, None, f"downloading {info.url} failed ({type(e).__name__}: {e})") from e
    if not _size_ok(own, info.size_bytes):
        size = os.path.getsize(own) if os.path.isfile(own) else 0
        if os.path.isfile(own):
            os.remove(own)
        raise _not_found(info, None, f"the download was incomplete ({size} of {info.size_bytes} bytes)")
    if info.md5_prefix and not _md5_prefix_ok(own, info.md5_prefix):
        warnings.warn(
            f"{own}: its MD5 does not start with {info.md5_prefix} as the official file name suggests; "
            "it may be corrupt (it is used if it loads)"
        )
    return own


# --- loading -------------------------------------------------------------------------------------------------------
def load_state_dict(path: str) -> dict:
    """The tensors of a SAM checkpoint file, on the CPU (``torch.load(weights_only=True)``: no code is executed).

    Accepts a plain ``state_dict`` (the official files) or one wrapped as ``{"model": state_dict}``.

    Raises:
        CheckpointLoadError: the file is not a loadable checkpoint (corrupt, truncated, not a state dict)
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        raise CheckpointLoadError(
            f"cannot load SAM checkpoint {path} ({size} bytes): {type(e).__name__}: {e}. If it is an interrupted "
            "download, delete it and run again."
        ) from e
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointLoadError(f"{path} holds a {type(state).__name__}, not a SAM state dict")
    return state
