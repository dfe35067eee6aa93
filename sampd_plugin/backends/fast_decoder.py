"""SAM's mask decoder with the per-frame work shared across prompts (the same function, computed in less time).

segment-anything's ``MaskDecoder.predict_masks`` copies the ``(C, h, w)`` image embedding and its positional
encoding once per prompt (``repeat_interleave``) and runs the whole ``TwoWayTransformer`` on B copies. But the first
layer's image side does not depend on the prompt, and every attention in the decoder has only ``T`` (5 to ~16)
prompt tokens on one side. :func:`predict_masks` computes the same function as ``MaskDecoder.predict_masks`` (no
mask input: SAM's ``no_mask_embed`` dense prompt, as in SamPD's calls) with:

- **once per frame** (:class:`DecoderContext`, cached on the frame's ``ImageState``): the image tokens
  ``src = embedding + no_mask_embed``, the dense positional encoding, and the first layer's image-side projections
  (keys and values of its token-to-image attention, queries of its image-to-token attention). No per-prompt copy
  of the embedding is ever made;
- **per prompt**, after the first layer (where the image tokens become prompt-dependent), attention folded
  through its projections where that is cheaper (``heads * T`` small against the projection width): e.g. for
  token-to-image attention ``softmax(q W_k (x + pe)^T) (x W_v^T + b_v) = softmax((q W_k) (x + pe)^T) x W_v^T + b_v``
  (the key bias shifts each softmax row by a constant; softmax rows sum to 1), so the ``(HW, C) -> (HW, C/2)``
  key/value projections of every prompt's ``HW = 4096`` image tokens become two ``(heads*T, C) x (C, HW)`` products;
  for image-to-token attention the query projection is folded into the keys and the output projection into the
  values the same way. With many tokens (many negative points) SAM's own attention modules are used instead;
- the output upscaling (two stride-2 transposed convolutions) as per-pixel linear maps in channels-last layout
  (no transposes of the per-prompt feature maps), and the hypernetwork product only for the mask tokens returned
  (1, or 3 with ``multimask``).

Equal to segment-anything's decoder up to float32 rounding (different summation order): the tests check logits and
predicted IoU against ``SamPredictor.predict_torch`` on random-weight models (tolerance in
:data:`LOGIT_TOLERANCE`). Works for any ``MaskDecoder`` / ``TwoWayTransformer`` geometry of segment-anything (and
MobileSAM, which reuses them). Shapes: ``HW = h_e * w_e`` image tokens of width ``C``; ``B`` prompts with ``T``
tokens each (5 output tokens + sparse prompt tokens).

This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import torch
import torch.nn.functional as F

#: max |fast - segment-anything| of the low-res mask logits, relative to max(1, max |logit|), and of the predicted
#: IoU, that the tests accept (float32; observed ~1e-6 relative on random-weight SAM decoders)
LOGIT_TOLERANCE = 1e-4


@dataclasses.dataclass
class DecoderContext:
    """The prompt-independent part of SAM's mask decoder for one frame.

    Attributes:
        src: ``(HW, C)`` image tokens: image embedding + ``no_mask_embed``, row-major over the ``(h, w)`` grid
        pos: ``(HW, C)`` dense positional encoding of the image tokens (``PromptEncoder.get_dense_pe``)
        k0: ``(heads, d, HW)`` first layer's token-to-image keys, ``k_proj(src + pos)``, per head, transposed
        v0: ``(heads, HW, d)`` first layer's token-to-image values, ``v_proj(src)``
        q0: ``(heads, d, HW)`` first layer's image-to-token queries, ``q_proj(src + pos) / sqrt(d)``, transposed
        size: ``(h, w)`` of the embedding grid
    """

    src: torch.Tensor
    pos: torch.Tensor
    k0: torch.Tensor
    v0: torch.Tensor
    q0: torch.Tensor
    size: Tuple[int, int]


def _first_layer(transformer):
    layer = transformer.layers[0]
    if not layer.skip_first_layer_pe:  # segment-anything's TwoWayTransformer: always True for layer 0
        raise ValueError("fast decoder expects a TwoWayTransformer whose first layer skips the query PE")
    return layer


@torch.inference_mode()
def prepare_context(model, embedding: torch.Tensor) -> DecoderContext:
    """The per-frame :class:`DecoderContext` of ``model`` (a segment-anything / MobileSAM ``Sam``) for one
    ``(C, h, w)`` image embedding."""
    c, h, w = embedding.shape
    pe = model.prompt_encoder.get_dense_pe()[0]  # (C, h, w)
    if tuple(pe.shape) != (c, h, w):
        raise ValueError(f"embedding {tuple(embedding.shape)} does not match the model's grid {tuple(pe.shape)}")
    src = (embedding + model.prompt_encoder.no_mask_embed.weight.reshape(-1, 1, 1)).reshape(c, -1).T.contiguous()
    pos = pe.reshape(c, -1).T.contiguous()
    layer = _first_layer(model.mask_decoder.transformer)
    t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
    heads = t2i.num_heads
    kp = src + pos
    k0 = t2i.k_proj(kp)  # (HW, Ci)
    d = k0.shape[1] // heads
    k0 = k0.T.reshape(heads, d, h * w).contiguous()
    v0 = t2i.v_proj(src).reshape(h * w, heads, d).transpose(0, 1).contiguous()
    dq = i2t.internal_dim // i2t.num_heads
    q0 = (i2t.q_proj(kp) / math.sqrt(dq)).T.reshape(i2t.num_heads, dq, h * w).contiguous()
    return DecoderContext(src=src, pos=pos, k0=k0, v0=v0, q0=q0, size=(h, w))


def _token_to_image(attn, q: torch.Tensor, keys: torch.Tensor, keys_pe: torch.Tensor) -> torch.Tensor:
    """``attn(q=q, k=keys_pe, v=keys)`` of SAM's ``Attention`` for per-prompt image tokens.

    q: ``(B, T, C)`` tokens (+ PE); keys: ``(B, HW, C)``; keys_pe: ``(B, HW, C)`` = keys + PE. Returns ``(B, T, C)``.
    """
    b, t, c = q.shape
    heads, ci = attn.num_heads, attn.internal_dim
    d = ci // heads
    if heads * t >= ci:  # many tokens: projecting the keys is cheaper
        return attn(q=q, k=keys_pe, v=keys)
    wk = attn.k_proj.weight.reshape(heads, d, c)  # (h, d, C)
    qh = attn.q_proj(q).reshape(b, t, heads, d).transpose(1, 2)  # (B, h, T, d)
    qk = torch.matmul(qh, wk).reshape(b, heads * t, c) / math.sqrt(d)  # (B, hT, C); k bias: softmax-invariant
    a = torch.softmax(torch.bmm(qk, keys_pe.transpose(1, 2)), dim=-1)  # (B, hT, HW)
    ctx = torch.bmm(a, keys).reshape(b, heads, t, c)  # (B, h, T, C): attention-weighted image tokens
    wv = attn.v_proj.weight.reshape(heads, d, c)
    out = torch.matmul(ctx, wv.transpose(1, 2)) + attn.v_proj.bias.reshape(heads, 1, d)  # (B, h, T, d)
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, ci))


def _folded_values(attn, v_tokens: torch.Tensor) -> torch.Tensor:
    """``(B, T, C)`` value-side tokens -> ``(B, h*T, C)``: ``v_proj`` then each head's slice of ``out_proj``."""
    b, t, _ = v_tokens.shape
    heads, ci = attn.num_heads, attn.internal_dim
    d = ci // heads
    v = attn.v_proj(v_tokens).reshape(b, t, heads, d).transpose(1, 2)  # (B, h, T, d)
    wo = attn.out_proj.weight.reshape(-1, heads, d).permute(1, 2, 0)  # (h, d, C)
    return torch.matmul(v, wo).reshape(b, heads * t, -1)


def _softmax_tokens(scores: torch.Tensor) -> torch.Tensor:
    """softmax over the T tokens of ``(..., T, HW)`` scores (for each image token: over the prompt tokens).
    Scores are laid out with the image tokens innermost: a softmax over a short last axis is ~20x slower on CPU."""
    return torch.softmax(scores, dim=-2)


def _image_to_token_first(attn, ctx: DecoderContext, k_tokens: torch.Tensor, v_tokens: torch.Tensor) -> torch.Tensor:
    """First layer's ``attn(q=src + pos, k=k_tokens, v=v_tokens)`` with the shared queries ``ctx.q0``.
    Returns ``(B, HW, C)``."""
    b, t, _ = k_tokens.shape
    heads, ci = attn.num_heads, attn.internal_dim
    d = ci // heads
    k = attn.k_proj(k_tokens).reshape(b, t, heads, d).permute(2, 0, 1, 3).reshape(heads, b * t, d)
    a = torch.bmm(k, ctx.q0)  # (h, B*T, HW)
    a = _softmax_tokens(a.reshape(heads, b, t, -1)).transpose(0, 1).reshape(b, heads * t, -1)  # (B, hT, HW)
    if heads * t < attn.embedding_dim:
        return torch.baddbmm(attn.out_proj.bias, a.transpose(1, 2), _folded_values(attn, v_tokens))
    v = attn.v_proj(v_tokens).reshape(b, t, heads, d)
    out = torch.einsum("bhtn,bthd->bnhd", a.reshape(b, heads, t, -1), v).reshape(b, -1, ci)
    return attn.out_proj(out)


def _image_to_token(attn, keys_pe: torch.Tensor, k_tokens: torch.Tensor, v_tokens: torch.Tensor) -> torch.Tensor:
    """``attn(q=keys_pe, k=k_tokens, v=v_tokens)`` for per-prompt image tokens ``keys_pe`` ``(B, HW, C)``.
    Returns ``(B, HW, C)``."""
    b, t, c = k_tokens.shape
    heads, ci = attn.num_heads, attn.internal_dim
    d = ci // heads
    if heads * t >= 2 * ci:  # many tokens: projecting the image tokens is cheaper
        return attn(q=keys_pe, k=k_tokens, v=v_tokens)
    k = attn.k_proj(k_tokens).reshape(b, t, heads, d).transpose(1, 2) / math.sqrt(d)  # (B, h, T, d)
    wq = attn.q_proj.weight.reshape(heads, d, c)  # (h, d, C)
    m = torch.matmul(k, wq).reshape(b, heads * t, c)  # (B, hT, C): q_proj folded into the keys
    bias = torch.matmul(k, attn.q_proj.bias.reshape(heads, d, 1)).reshape(b, heads * t, 1)
    a = torch.baddbmm(bias, m, keys_pe.transpose(1, 2))  # (B, hT, HW)
    a = _softmax_tokens(a.reshape(b, heads, t, -1)).reshape(b, heads * t, -1)
    return torch.baddbmm(attn.out_proj.bias, a.transpose(1, 2), _folded_values(attn, v_tokens))


def _layer_norm(norm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


@torch.inference_mode()
def run_transformer(transformer, ctx: DecoderContext, tokens: torch.Tensor):
    """``TwoWayTransformer.forward(src, pos, tokens)`` for ``B`` prompts sharing one frame.

    Args:
        transformer: segment-anything's ``TwoWayTransformer``
        ctx: the frame's :class:`DecoderContext`
        tokens: ``(B, T, C)`` output + sparse prompt tokens (the queries and their PE)

    Returns:
        ``(queries (B, T, C), keys (B, HW, C))`` as segment-anything returns them
    """
    query_pe = tokens
    layer = _first_layer(transformer)
    # layer 0: self-attention without PE, then attention against the shared image tokens
    queries = layer.norm1(layer.self_attn(q=tokens, k=tokens, v=tokens))
    a = layer.cross_attn_token_to_image
    b, t, c = queries.shape
    heads = a.num_heads
    d = a.internal_dim // heads
    qh = a.q_proj(queries + query_pe).reshape(b, t, heads, d).permute(2, 0, 1, 3).reshape(heads, b * t, d)
    attn = torch.softmax(torch.bmm(qh, ctx.k0) / math.sqrt(d), dim=-1)  # (h, BT, HW)
    out = torch.bmm(attn, ctx.v0).reshape(heads, b, t, d).permute(1, 2, 0, 3).reshape(b, t, a.internal_dim)
    queries = layer.norm2(queries + a.out_proj(out))
    queries = layer.norm3(queries + layer.mlp(queries))
    out = _image_to_token_first(layer.cross_attn_image_to_token, ctx, queries + query_pe, queries)
    keys = _layer_norm(layer.norm4, out + ctx.src)  # (B, HW, C): from here on per prompt

    for layer in transformer.layers[1:]:
        q = queries + query_pe
        queries = layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries))
        keys_pe = keys + ctx.pos
        queries = layer.norm2(queries + _token_to_image(layer.cross_attn_token_to_image, queries + query_pe, keys,
                                                        keys_pe))
        queries = layer.norm3(queries + layer.mlp(queries))
        out = _image_to_token(layer.cross_attn_image_to_token, keys_pe, queries + query_pe, queries)
        keys = _layer_norm(layer.norm4, keys + out)

    out = _token_to_image(transformer.final_attn_token_to_image, queries + query_pe, keys, keys + ctx.pos)
    queries = transformer.norm_final_attn(queries + out)
    return queries, keys


def _upscale(decoder, keys: torch.Tensor, hyper: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``output_upscaling`` + hypernetwork product: ``(B, HW, C)`` image tokens and ``(B, K, C/8)`` mask weights
    -> ``(B, K, 4h, 4w)`` low-resolution logits. Each stride-2, kernel-2 transposed convolution is a per-pixel
    linear map to its 2x2 output pixels, applied channels-last; the pixels are put in place once, at the end."""
    up1, norm, act1, up2, act2 = decoder.output_upscaling
    if not (isinstance(up1, torch.nn.ConvTranspose2d) and isinstance(up2, torch.nn.ConvTranspose2d)
            and up1.kernel_size == up1.stride == (2, 2) and up2.kernel_size == up2.stride == (2, 2)):
        raise ValueError("fast decoder expects SAM's output upscaling (two kernel-2 stride-2 transposed convs)")
    b, n, c = keys.shape
    h, w = size
    c1, c2 = up1.out_channels, up2.out_channels
    w1 = up1.weight.permute(0, 2, 3, 1).reshape(c, 4 * c1)  # (C, (i1, j1, c1))
    x = torch.addmm(up1.bias.repeat(4), keys.reshape(b * n, c), w1).reshape(b * n * 4, c1)
    x = act1(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps))
    w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)  # (c1, (i2, j2, c2))
    x = act2(torch.addmm(up2.bias.repeat(4), x, w2))  # (B*HW*4, 4*c2)
    k = hyper.shape[1]
    masks = torch.bmm(x.reshape(b, n * 16, c2), hyper.transpose(1, 2))  # (B, HW*16, K)
    # (b, y, x, i1, j1, i2, j2, k) -> (b, k, y, i1, i2, x, j1, j2): row 4y + 2 i1 + i2, column 4x + 2 j1 + j2
    masks = masks.reshape(b, h, w, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
    return masks.reshape(b, k, 4 * h, 4 * w)


@torch.inference_mode()
def predict_masks(model, ctx: DecoderContext, sparse: torch.Tensor, multimask: bool):
    """``SamPredictor.predict_torch``'s decoder step (``MaskDecoder.forward`` without mask input) for ``B`` prompts.

    Args:
        model: a segment-anything / MobileSAM ``Sam``
        ctx: the frame's :class:`DecoderContext` (:func:`prepare_context`)
        sparse: ``(B, S, C)`` sparse prompt embeddings (``PromptEncoder``'s first output)
        multimask: return SAM's 3 multimask outputs instead of the single-mask output

    Returns:
        ``(low_res_logits (B, K, 4h, 4w), iou (B, K))`` with ``K = 3`` if ``multimask`` else ``1``
    """
    dec = model.mask_decoder
    b = sparse.shape[0]
    output_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(b, -1, -1), sparse), dim=1)
    hs, keys = run_transformer(dec.transformer, ctx, tokens)
    which = range(1, dec.num_mask_tokens) if multimask else range(0, 1)
    hyper = torch.stack([dec.output_hypernetworks_mlps[i](hs[:, 1 + i, :]) for i in which], dim=1)
    masks = _upscale(dec, keys, hyper, ctx.size)
    iou = dec.iou_prediction_head(hs[:, 0, :])
    return masks, iou[:, 1:] if multimask else iou[:, :1]
