"""segment-anything (SAM) as a :class:`~sampd_plugin.backends.base.PromptableSegmenter`.

:class:`SamBackend` wraps a ``segment_anything.modeling.Sam`` and runs exactly the steps of segment-anything's
``SamPredictor``: ``set_image`` for :meth:`~SamBackend.encode` (its resizing and normalisation in
:meth:`~SamBackend.prepare`, which may run ahead on the prefetch thread) and ``predict_torch`` for
:meth:`~SamBackend.decode`, boxes first converted to SAM's convention (paper Sec. III-A: encode a frame once, decode
many prompts against it), and ``SamAutomaticMaskGenerator`` for :meth:`~SamBackend.generate_masks` (automatic mode,
Sec. IV-B).

Checkpoint files (official names, download, FiftyOne zoo cache) are found by :mod:`sampd_plugin.backends.checkpoints`;
:func:`load_sam` (a backend over an official checkpoint) is the usual entry point. :mod:`sampd_plugin.backends.tiny`
builds a small random-weight ``Sam`` that goes through this same class.

Everything runs under ``torch.inference_mode``: the returned tensors are inference tensors (read them freely; copy
with ``.clone()`` before modifying them in place outside inference mode).

This module imports no FiftyOne.
"""

from __future__ import annotations

import contextlib
import types
import warnings
from typing import Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamAutomaticMaskGenerator, SamPredictor
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from sampd_plugin.backends import fast_decoder
from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter, check_rgb, foreground, resolve_device
from sampd_plugin.backends.checkpoints import CheckpointLoadError, checkpoint_info, load_state_dict, resolve_checkpoint
from sampd_plugin.core.prompts import sam_box

#: Prompts per decoder call on the CPU, measured with ``python perf/decoder_batch.py --prompts 54 162 --repeats 2
#: --clock cpu --threads 1`` (SAM's real-width decoder of the tiny model through the shared-work decoder
#: :mod:`~sampd_plugin.backends.fast_decoder`, box prompts, single mask, 480x854 frame; torch 2.14.1; CPU time per
#: process on a shared 2-core machine). ms/prompt, best of 2 rounds, P = 54 | 162 prompts in batches of b:
#:
#:     b = 1: 30.4 | 31.1    2: 34.7 | 35.7    4: 42.2 | 42.7    8: 50.8 | 50.2    16: 52.8 | 53.6
#:     unlimited (one call): 55.7 | 67.6
#:
#: Each prompt's image tokens (4096 x 256 floats, 4 MB) fall out of the cache and, with glibc's default malloc, are
#: page-faulted in again for big batches; with the malloc settings of :data:`sampd_plugin.ops.threads.MALLOC_ENV`
#: (P = 54): b = 1: 31.3, 4: 31.4, 18: 34.1, unlimited 39.3 (the segment-anything decoder: 253 ms/prompt at b = 4).
#: b = 4 is kept: equal to b = 1 with those settings (``make env``, the activate hook, workers), a quarter of the
#: calls, bounded memory; without them b = 1 would be ~25 % faster per prompt. CUDA: unlimited (``None``).
CPU_PREFERRED_BATCH_SIZE = 4

#: ``ImageState.extra`` key of the frame's (model, :class:`fast_decoder.DecoderContext`)
_CONTEXT_KEY = "sam_decoder_context"

_HALF_DTYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


class _SamInput(NamedTuple):
    """A frame prepared for SAM's image encoder (:meth:`SamBackend._prepare`)."""

    pixels: torch.Tensor  # (1, 3, S, S) float32, normalised and padded (Sam.preprocess), on the backend's device
    image_size: tuple  # (H, W) of the original image
    input_size: tuple  # (h_in, w_in) of the resized image inside the padded square


class SamBackend(PromptableSegmenter):
    """segment-anything's ``Sam`` behind the :class:`PromptableSegmenter` interface.

    Args:
        model: a built ``Sam`` (e.g. :func:`~sampd_plugin.backends.tiny.build_tiny_sam`); if ``None``, the official
            ``model_type`` checkpoint is resolved and loaded with :func:`sampd_plugin.backends.checkpoints.build_sam_model`
        model_type: ``"vit_h"``, ``"vit_l"`` or ``"vit_b"`` (a name only, when ``model`` is given)
        checkpoint: optional checkpoint path, only when ``model`` is ``None``
        device: torch device; ``None`` picks ``cuda`` when available, else ``cpu``
        half: run the image encoder under mixed precision autocast (CUDA only): ``True`` picks bfloat16 where the
            GPU supports it, else float16; or ``"fp16"`` / ``"bf16"`` / a torch dtype. The embedding is returned
            in float32 and the (light) prompt encoder and mask decoder always run in float32. Ignored with a warning
            on other devices.
        points_per_side: grid of the automatic mask generator (:meth:`generate_masks`), ``points_per_side**2``
            point prompts
        amg_kwargs: further ``SamAutomaticMaskGenerator`` arguments (``pred_iou_thresh``, ``stability_score_thresh``,
            ``box_nms_thresh``, ``crop_n_layers``, ``min_mask_region_area``, ...)
        download: with ``model=None``, whether a missing checkpoint may be downloaded
        fast_decoder: decode with :mod:`sampd_plugin.backends.fast_decoder` (SAM's mask decoder with the per-frame
            work computed once per frame and shared by all prompts; equal to segment-anything's up to float32
            rounding). ``False`` runs segment-anything's ``MaskDecoder`` exactly as ``SamPredictor.predict_torch``.
        sdpa: run the ViT image encoder's attention with ``torch.nn.functional.scaled_dot_product_attention``
            (the relative-position term as an additive mask): the same function up to float rounding (embedding
            within 3e-6 on the tiny SAM), see :func:`use_sdpa_attention`. ``None`` (default): on, except on CUDA in
            float32, where it measured 2-5 % slower (ViT-H on an H200: 188 vs 197 ms; with bf16 autocast 58 vs
            47 ms; tiny SAM on the CPU, 1 thread: 450-490 vs 280-370 ms)
        compile: ``torch.compile`` the image encoder (first frames are slow while it compiles; CUDA)
    """

    def __init__(
        self,
        model: Optional[Sam] = None,
        model_type: str = "vit_h",
        checkpoint: Optional[str] = None,
        device=None,
        half: Union[bool, str, torch.dtype] = False,
        points_per_side: int = 32,
        amg_kwargs: Optional[dict] = None,
        download: bool = True,
        fast_decoder: bool = True,
        sdpa: Optional[bool] = None,
        compile: bool = False,
    ):
        super().__init__()
        if model is None:
            model = build_sam_model(model_type, checkpoint=checkpoint, download=download)
        elif checkpoint is not None:
            raise ValueError("pass either a built `model` or a `checkpoint` to load, not both")
        self.model_type = model_type
        self.model = model.to(resolve_device(device)).eval()
        self.device = self.model.device  # e.g. cuda:0 rather than cuda, as the tensors report it
        self.transform = ResizeLongestSide(self.model.image_encoder.img_size)
        self.autocast_dtype = self._autocast_dtype(half)
        self.points_per_side = int(points_per_side)
        self.amg_kwargs = dict(amg_kwargs or {})
        self.fast_decoder = bool(fast_decoder)
        if sdpa is None:
            sdpa = not (self.device.type == "cuda" and self.autocast_dtype is None)
        self._sdpa_modules = _vit_attention_modules(self.model.image_encoder) if sdpa else []
        self.sdpa = bool(self._sdpa_modules)
        if compile:
            self.model.image_encoder = torch.compile(self.model.image_encoder)
        self.preferred_batch_size = CPU_PREFERRED_BATCH_SIZE if self.device.type == "cpu" else None

        # grid geometry, from the model (SAM: 1024-px input, 64x64 embedding, 256x256 low-res masks)
        img_size = self.model.image_encoder.img_size
        emb_h, emb_w = self.model.prompt_encoder.image_embedding_size
        if img_size % emb_h or img_size % emb_w or emb_h != emb_w:
            raise ValueError(f"unsupported SAM geometry: {img_size}-px input, {emb_h}x{emb_w} embedding")
        upscale = 1
        for m in self.model.mask_decoder.output_upscaling.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                upscale *= m.stride[0]
        self.embed_stride = img_size // emb_h  # SAM: 16
        self.mask_stride = self.embed_stride // upscale  # SAM: 16 / 4 = 4
        self.num_multimask_outputs = self.model.mask_decoder.num_multimask_outputs

    def __repr__(self):
        half = "" if self.autocast_dtype is None else f", half={self.autocast_dtype}"
        return f"SamBackend(model_type={self.model_type!r}, device={str(self.device)!r}{half})"

    def _autocast_dtype(self, half) -> Optional[torch.dtype]:
        if half is False or half is None:
            return None
        if self.device.type != "cuda":
            warnings.warn(
                f"half precision is only used on CUDA; running the image encoder in float32 on {self.device}",
                stacklevel=3,
            )
            return None
        if half is True:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if isinstance(half, torch.dtype) and half in (torch.float16, torch.bfloat16):
            return half
        if isinstance(half, str) and half.lower() in _HALF_DTYPES:
            return _HALF_DTYPES[half.lower()]
        raise ValueError(f"half must be a bool, 'fp16' or 'bf16'; got {half!r}")

    # --- encoding -------------------------------------------------------------------------------------------
    def _run_image_encoder(self, transformed_image: torch.Tensor) -> torch.Tensor:
        """``SamPredictor.set_torch_image``'s computation: ``(1, 3, h_in, w_in)`` resized image (long side
        ``img_size``) -> ``(1, C, h_e, w_e)`` float32 features (normalise, pad, image encoder under autocast when
        ``half``)."""
        return self._image_encoder(self.model.preprocess(transformed_image))

    def _image_encoder(self, input_image: torch.Tensor) -> torch.Tensor:
        """The image encoder on a normalised, padded ``(1, 3, S, S)`` input (``Sam.preprocess``'s output), with our
        attention (:func:`use_sdpa_attention`) and autocast when ``half`` -> ``(1, C, h_e, w_e)`` float32."""
        with use_sdpa_attention(self._sdpa_modules):
            if self.autocast_dtype is None:
                return self.model.image_encoder(input_image)
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                features = self.model.image_encoder(input_image)
        return features.float()

    @torch.inference_mode()
    def _prepare(self, image: np.ndarray) -> "_SamInput":
        """``SamPredictor.set_image`` up to the image encoder (runs on the prefetch thread; thread-safe: it reads the
        model's constants only): colour order, ``ResizeLongestSide`` (PIL bilinear, as segment-anything), to a
        ``(1, 3, h_in, w_in)`` tensor on the backend's device, ``Sam.preprocess`` (normalise, pad to ``S x S``)."""
        if self.model.image_format != "RGB":  # our images are RGB (base contract)
            image = image[..., ::-1]
        input_image = self.transform.apply_image(image)
        input_image_torch = torch.as_tensor(input_image, device=self.device)
        input_image_torch = input_image_torch.permute(2, 0, 1).contiguous()[None, :, :, :]
        return _SamInput(
            pixels=self.model.preprocess(input_image_torch),
            image_size=(int(image.shape[0]), int(image.shape[1])),
            input_size=(int(input_image_torch.shape[-2]), int(input_image_torch.shape[-1])),
        )

    @torch.inference_mode()
    def _encode(self, prepared: "_SamInput", frame_number: Optional[int]) -> ImageState:
        """The image encoder on :meth:`_prepare`'s input: together, the steps of ``SamPredictor.set_image``."""
        features = self._image_encoder(prepared.pixels)
        return ImageState(
            embedding=features[0],
            image_size=prepared.image_size,
            input_size=prepared.input_size,
            embed_stride=self.embed_stride,
            mask_stride=self.mask_stride,
            frame_number=frame_number,
        )

    # --- decoding -------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _decode(
        self,
        state: ImageState,
        boxes: Optional[torch.Tensor],
        points: Optional[torch.Tensor],
        point_labels: Optional[torch.Tensor],
        multimask: bool,
    ) -> Decoded:
        """``SamPredictor.predict_torch`` for B prompts, after mapping them from image pixels to the input frame
        with ``ResizeLongestSide`` (as ``SamPredictor.predict`` does). Boxes arrive in the library's convention
        (right/bottom exclusive) and reach SAM in the one it was trained on (right/bottom on the last pixel,
        :func:`~sampd_plugin.core.prompts.sam_box`): the box of a mask is exactly segment-anything's
        ``batched_mask_to_box`` of it. Label ``-1`` points get SAM's "not a point" embedding."""
        original_size = tuple(state.image_size)
        coords_torch = labels_torch = box_torch = None
        if points is not None:
            coords_torch = self.transform.apply_coords_torch(
                torch.as_tensor(points, dtype=torch.float, device=self.device), original_size
            )
            labels_torch = torch.as_tensor(point_labels, dtype=torch.int, device=self.device)
        if boxes is not None:
            box_torch = self.transform.apply_boxes_torch(
                sam_box(torch.as_tensor(boxes, dtype=torch.float, device=self.device)), original_size
            )
        batch = (box_torch if box_torch is not None else coords_torch).shape[0]
        k = self.num_multimask_outputs if multimask else 1
        h_e, w_e = state.embedding.shape[-2:]
        h_m, w_m = h_e * self.embed_stride // self.mask_stride, w_e * self.embed_stride // self.mask_stride
        if batch == 0:
            return Decoded(
                low_res_logits=torch.zeros((0, k, h_m, w_m), device=self.device),
                iou=torch.zeros((0, k), device=self.device),
            )

        sparse_embeddings, dense_embeddings = self.model.prompt_encoder(
            points=(coords_torch, labels_torch) if coords_torch is not None else None,
            boxes=box_torch,
            masks=None,
        )
        if self.fast_decoder:
            low_res_masks, iou_predictions = fast_decoder.predict_masks(
                self.model, self.decoder_context(state), sparse_embeddings, multimask
            )
            return Decoded(low_res_logits=low_res_masks, iou=iou_predictions)
        low_res_masks, iou_predictions = self.model.mask_decoder(
            image_embeddings=state.embedding[None].to(self.device),
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask,
        )
        return Decoded(low_res_logits=low_res_masks, iou=iou_predictions)

    def decoder_context(self, state: ImageState) -> "fast_decoder.DecoderContext":
        """The frame's prompt-independent decoder work (:func:`fast_decoder.prepare_context`), computed on the first
        decode of ``state`` and kept in ``state.extra`` for the frame's later decoder calls."""
        ctx = state.extra.get(_CONTEXT_KEY)
        if ctx is None or ctx[0] is not self.model:
            ctx = (self.model, fast_decoder.prepare_context(self.model, state.embedding.to(self.device)))
            state.extra[_CONTEXT_KEY] = ctx
        return ctx[1]

    def upsample(self, state: ImageState, low_res_logits: torch.Tensor) -> torch.Tensor:
        """:meth:`PromptableSegmenter.upsample` (segment-anything's ``postprocess_masks`` + threshold), computing the
        first bilinear upscaling only over the image part of the padded input frame (plus the one low-res row and
        column it interpolates from): the same values, without upscaling the padding that is cropped anyway."""
        if low_res_logits.shape[0] == 0:
            return super().upsample(state, low_res_logits)
        s = state.mask_stride
        h_m, w_m = low_res_logits.shape[-2:]
        rows = min(h_m, -(-state.input_size[0] // s) + 1)
        cols = min(w_m, -(-state.input_size[1] // s) + 1)
        x = low_res_logits[:, None, :rows, :cols].float()
        x = F.interpolate(x, (rows * s, cols * s), mode="bilinear", align_corners=False)
        x = x[..., : state.input_size[0], : state.input_size[1]]
        x = F.interpolate(x, tuple(state.image_size), mode="bilinear", align_corners=False)
        return foreground(x[:, 0])

    # --- automatic mode -------------------------------------------------------------------------------------
    def mask_generator(self, points_per_side: Optional[int] = None, **amg_kwargs) -> SamAutomaticMaskGenerator:
        """segment-anything's ``SamAutomaticMaskGenerator`` on this backend's model, whose predictor encodes with
        this backend (same device, ``half``) and counts encoder/decoder calls in this backend's counters."""
        kwargs = {"points_per_batch": self.preferred_batch_size or 64, "output_mode": "binary_mask"}
        kwargs.update(self.amg_kwargs)
        kwargs.update(amg_kwargs)
        generator = SamAutomaticMaskGenerator(
            self.model, points_per_side=points_per_side or self.points_per_side, **kwargs
        )
        generator.predictor = _BackendPredictor(self)
        return generator

    def generate_masks(
        self,
        image: np.ndarray,
        max_masks: int = 100,
        frame_number: Optional[int] = None,
        points_per_side: Optional[int] = None,
        **amg_kwargs,
    ) -> Sequence[np.ndarray]:
        """Automatic mode (paper Sec. IV-B): SAM's automatic mask generator on one ``(H, W, 3)`` uint8 RGB image.

        Returns at most ``max_masks`` ``(H, W)`` bool masks, best first (by predicted IoU, then stability score).
        ``points_per_side`` and ``amg_kwargs`` override the constructor's settings for this call.
        """
        image = check_rgb(image)
        if max_masks <= 0:
            return []
        generator = self.mask_generator(points_per_side=points_per_side, **amg_kwargs)
        if generator.output_mode != "binary_mask":
            raise ValueError("generate_masks returns binary masks; use mask_generator() for other output modes")
        with torch.inference_mode():
            records = generator.generate(image)
        records.sort(key=lambda r: (r["predicted_iou"], r["stability_score"]), reverse=True)
        return [np.asarray(r["segmentation"], dtype=bool) for r in records[: max(0, int(max_masks))]]


class _BackendPredictor(SamPredictor):
    """``SamPredictor`` whose image encoding goes through :meth:`SamBackend._run_image_encoder` (device, autocast)
    and whose calls are counted in the backend's counters."""

    def __init__(self, backend: SamBackend):
        super().__init__(backend.model)
        self.backend = backend

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size) -> None:
        assert (
            len(transformed_image.shape) == 4
            and transformed_image.shape[1] == 3
            and max(*transformed_image.shape[2:]) == self.model.image_encoder.img_size
        ), f"set_torch_image input must be BCHW with long side {self.model.image_encoder.img_size}."
        self.reset_image()
        self.original_size = original_image_size
        self.input_size = tuple(transformed_image.shape[-2:])
        self.features = self.backend._run_image_encoder(transformed_image)
        self.is_image_set = True
        self.backend.encode_calls += 1

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None, multimask_output=True,
                      return_logits=False):
        batch = next(x.shape[0] for x in (point_coords, boxes, mask_input, torch.zeros(1)) if x is not None)
        self.backend.decode_calls += 1
        self.backend.decoded_prompts += int(batch)
        return super().predict_torch(
            point_coords, point_labels, boxes, mask_input, multimask_output, return_logits=return_logits
        )


# --- encoder attention through SDPA -------------------------------------------------------------------------------
def _sdpa_attention_forward(self, x: torch.Tensor) -> torch.Tensor:
    """segment-anything's ``image_encoder.Attention.forward`` with ``scaled_dot_product_attention``: softmax(q k^T
    * scale + rel_pos) v, the decomposed relative-position term (``add_decomposed_rel_pos``) given as the additive
    mask. x: ``(B, H, W, C)``."""
    from segment_anything.modeling.image_encoder import get_rel_pos

    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, HW, d)
    bias = None
    if self.use_rel_pos:
        r_q = q.reshape(b * self.num_heads, h, w, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, get_rel_pos(h, h, self.rel_pos_h))
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, get_rel_pos(w, w, self.rel_pos_w))
        bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(b, self.num_heads, h * w, h * w)
        bias = bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
    out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def _vit_attention_modules(image_encoder) -> list:
    """The attention modules of a segment-anything ViT image encoder ([] for other encoders, e.g. MobileSAM's)."""
    from segment_anything.modeling.image_encoder import Attention

    return [m for m in image_encoder.modules() if isinstance(m, Attention)]


@contextlib.contextmanager
def use_sdpa_attention(modules):
    """While active, the given segment-anything ViT attention modules run :func:`_sdpa_attention_forward`; the
    model is left as it was afterwards (a ``SamPredictor`` on the same model keeps segment-anything's attention)."""
    for m in modules:
        m.forward = types.MethodType(_sdpa_attention_forward, m)
    try:
        yield
    finally:
        for m in modules:
            m.__dict__.pop("forward", None)


# --- loading official checkpoints -------------------------------------------------------------------------------
def sam_builder(model_type: str) -> Callable[[], "torch.nn.Module"]:
    """segment-anything's builder for ``model_type`` (``sam_model_registry``), without a checkpoint."""
    from segment_anything import sam_model_registry

    return sam_model_registry[checkpoint_info(model_type).model_type]



def build_sam_model(
    model_type: str = "vit_h",
    checkpoint: Optional[str] = None,
    download: bool = True,
    builder: Optional[Callable[[], "torch.nn.Module"]] = None,
):
    """A ``segment_anything.modeling.Sam`` with the resolved checkpoint's weights, on the CPU, in eval mode.

    Args:
        model_type: ``vit_h``, ``vit_l`` or ``vit_b``
        checkpoint: explicit checkpoint path (see :func:`resolve_checkpoint`)
        download: whether a missing official checkpoint may be downloaded
        builder: a callable returning the uninitialised ``Sam`` to load into (default: segment-anything's builder
            of ``model_type``); with an explicit ``checkpoint`` any architecture works (tests use the tiny SAM)

    Raises:
        CheckpointNotFoundError: see :func:`resolve_checkpoint`
        CheckpointLoadError: the file does not load, or does not fit the model (e.g. a vit_b file for vit_h)
    """
    if builder is None:
        builder = sam_builder(model_type)
    path = resolve_checkpoint(model_type, checkpoint=checkpoint, download=download)
    state = load_state_dict(path)
    model = builder()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointLoadError(
            f"SAM checkpoint {path} does not fit the {model_type} model (wrong model type?): {e}"
        ) from e
    return model.eval()



def load_sam(
    model_type: str = "vit_h",
    checkpoint: Optional[str] = None,
    device=None,
    half=False,
    download: bool = True,
    builder: Optional[Callable[[], "torch.nn.Module"]] = None,
    **backend_kwargs,
):
    """A :class:`~sampd_plugin.backends.sam.SamBackend` over the official ``model_type`` checkpoint (or
    ``checkpoint``), on ``device`` (``None``: CUDA when available), optionally with a half-precision image encoder
    (CUDA). Further keyword arguments go to :class:`~sampd_plugin.backends.sam.SamBackend`."""
    model = build_sam_model(model_type, checkpoint=checkpoint, download=download, builder=builder)
    return SamBackend(model=model, model_type=model_type, device=device, half=half, **backend_kwargs)
