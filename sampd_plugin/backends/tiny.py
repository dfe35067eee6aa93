"""A tiny, randomly initialised SAM built from segment-anything's own modules (tests, CPU benchmarks, demos).

The image encoder is a small ViT (same architecture as SAM's ``ImageEncoderViT``: 16-px patches, windowed and global
attention with relative positions, a 256-channel neck) so that a 1024-px frame encodes on a CPU in a fraction of a
second. The prompt encoder and mask decoder are SAM's real ones at SAM's real width (256 channels, a two-layer
``TwoWayTransformer`` with MLP width 2048, 8 heads, 3 multimask outputs), so decoder timings are representative of
the real checkpoints (SAM's decoder is the same for ViT-B/L/H). The weights are random (seeded, deterministic): the
masks are meaningless, but shapes, coordinate handling, the code path and call counts are exactly those of a real
checkpoint, because :func:`tiny_backend` wraps the model in the same :class:`~sampd_plugin.backends.sam.SamBackend`.

Cost on a 2-core CPU (torch 2.14.1): encoding a 1024-px frame ~0.45 s (idle machine; the global-attention block is
~70 % of it); decoding ~0.25 s per prompt (the real decoder: ``perf/decoder_batch.py``), so a 54-prompt
SAM-PD frame costs ~14 s. For fast tests that do not need representative decoder timings pass e.g.
``prompt_embed_dim=64, decoder_mlp_dim=512, decoder_num_heads=4`` (~5x cheaper decoding, 64-channel embedding).

This module imports no FiftyOne.
"""

from __future__ import annotations

from functools import partial
from typing import Optional, Sequence

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from .sam import SamBackend

#: SAM's constants (segment_anything/build_sam.py), kept so the tiny model has SAM's geometry
SAM_IMG_SIZE = 1024
SAM_PATCH_SIZE = 16
SAM_PROMPT_EMBED_DIM = 256


def build_tiny_sam(
    seed: int = 0,
    encoder_embed_dim: int = 64,
    encoder_depth: int = 2,
    encoder_num_heads: int = 2,
    encoder_global_attn_indexes: Sequence[int] = (1,),
    encoder_window_size: int = 14,
    prompt_embed_dim: int = SAM_PROMPT_EMBED_DIM,
    decoder_mlp_dim: int = 2048,
    decoder_num_heads: int = 8,
    img_size: int = SAM_IMG_SIZE,
    patch_size: int = SAM_PATCH_SIZE,
) -> Sam:
    """Builds a small segment-anything ``Sam`` with random weights, deterministic for a given ``seed``.

    Mirrors ``segment_anything.build_sam._build_sam`` with a smaller image encoder (defaults: embedding width 64,
    2 blocks, the second with global attention). The prompt encoder and mask decoder default to SAM's real sizes.
    Image embedding: ``(prompt_embed_dim, img_size / patch_size, img_size / patch_size)`` = ``(256, 64, 64)``;
    low-resolution masks: ``256 x 256``.

    The global RNG state is left untouched (the weights are drawn inside ``torch.random.fork_rng``).
    Returns the model in eval mode, on the CPU.
    """
    embedding_size = img_size // patch_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=encoder_depth,
                embed_dim=encoder_embed_dim,
                img_size=img_size,
                mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=encoder_num_heads,
                patch_size=patch_size,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=tuple(encoder_global_attn_indexes),
                window_size=encoder_window_size,
                out_chans=prompt_embed_dim,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=prompt_embed_dim,
                image_embedding_size=(embedding_size, embedding_size),
                input_image_size=(img_size, img_size),
                mask_in_chans=16,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=2,
                    embedding_dim=prompt_embed_dim,
                    mlp_dim=decoder_mlp_dim,
                    num_heads=decoder_num_heads,
                ),
                transformer_dim=prompt_embed_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=256,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
        # SAM zero-initialises the positional embedding and the relative-position tables; random values make the
        # tiny encoder exercise them (still seeded).
        with torch.no_grad():
            for name, p in sam.image_encoder.named_parameters():
                if name == "pos_embed" or name.endswith(("rel_pos_h", "rel_pos_w")):
                    p.normal_(0.0, 0.02)
    return sam.eval()


def tiny_backend(
    seed: int = 0,
    device="cpu",
    half=False,
    points_per_side: int = 32,
    amg_kwargs: Optional[dict] = None,
    **model_kwargs,
) -> SamBackend:
    """A :class:`SamBackend` over :func:`build_tiny_sam` (``seed`` and ``model_kwargs``, e.g. ``prompt_embed_dim=64``
    for a faster, non-representative decoder), on ``device`` (default CPU; ``None`` picks CUDA when available).
    ``half``, ``points_per_side`` and ``amg_kwargs`` are :class:`SamBackend`'s."""
    return SamBackend(
        model=build_tiny_sam(seed=seed, **model_kwargs),
        model_type="tiny",
        device=device,
        half=half,
        points_per_side=points_per_side,
        amg_kwargs=amg_kwargs,
    )
