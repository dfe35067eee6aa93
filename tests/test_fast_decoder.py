"""The shared-work mask decoder (backends.fast_decoder) against segment-anything's ``SamPredictor.predict_torch``.

Tolerance: low-res logits within ``LOGIT_TOLERANCE * max(1, max |logit|)`` and predicted IoU within
``LOGIT_TOLERANCE`` (float32 rounding; different summation order), on the tiny random SAM whose decoder is SAM's
real one (256 wide, 8 heads) and on a narrower geometry (64 wide, 4 heads). Batches of 1..N prompts, boxes, points
with -1 padding, boxes + negative points, many tokens (the unfolded attention paths), single and multimask.
"""
import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from sampd_plugin.backends import fast_decoder
from sampd_plugin.backends.base import PromptableSegmenter
from sampd_plugin.backends.fast_decoder import LOGIT_TOLERANCE
from sampd_plugin.backends.sam import SamBackend
from sampd_plugin.backends.tiny import build_tiny_sam, tiny_backend
from sampd_plugin.core.prompts import sam_box

H, W = 90, 160  # 16:9: input frame 576 x 1024 inside the padded 1024 square


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[20:70, 40:120] = (30, 200, 90)
    return img


def _setup(image, **model_kwargs):
    backend = tiny_backend(seed=3, **model_kwargs)
    predictor = SamPredictor(backend.model)
    predictor.set_image(image)
    return backend, backend.encode(image), predictor


@pytest.fixture(scope="module")
def real_width(image):
    return _setup(image)


@pytest.fixture(scope="module")
def narrow(image):
    return _setup(image, prompt_embed_dim=64, decoder_mlp_dim=256, decoder_num_heads=4)


def _prompts(rng, batch, kind, points_per_prompt=3):
    boxes = points = labels = None
    if kind in ("boxes", "boxes+points"):
        xy = rng.uniform([0, 0], [W, H], (batch, 2, 2))
        boxes = torch.tensor(np.concatenate([xy.min(1), xy.max(1) + 1], 1), dtype=torch.float32)
    if kind in ("points", "boxes+points"):
        points = torch.tensor(rng.uniform([0, 0], [W, H], (batch, points_per_prompt, 2)), dtype=torch.float32)
        labels = torch.tensor(rng.integers(0, 2, (batch, points_per_prompt)))
        labels[:, -1] = -1  # padding, as pack_points makes it
        labels[0, 0] = 1
    return boxes, points, labels


def _reference(predictor, boxes, points, labels, multimask):
    """SamPredictor.predict_torch on the prompts as the backend hands them to SAM (boxes in SAM's convention)."""
    size = predictor.original_size
    _, iou, low = predictor.predict_torch(
        None if points is None else predictor.transform.apply_coords_torch(points, size),
        None if labels is None else labels.int(),
        None if boxes is None else predictor.transform.apply_boxes_torch(sam_box(boxes), size),
        multimask_output=multimask,
    )
    return low, iou


def _assert_close(ours, low, iou):
    scale = max(1.0, float(low.abs().max()))
    assert ours.low_res_logits.shape == low.shape and ours.iou.shape == iou.shape
    assert float((ours.low_res_logits - low).abs().max()) <= LOGIT_TOLERANCE * scale
    assert float((ours.iou - iou).abs().max()) <= LOGIT_TOLERANCE
    # masks differ at most where the reference logit is within the tolerance of the 0 threshold
    differ = (ours.low_res_logits > 0) != (low > 0)
    assert bool((low[differ].abs() <= LOGIT_TOLERANCE * scale).all())


@pytest.mark.parametrize("kind", ["boxes", "points", "boxes+points"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("multimask", [False, True])
def test_equals_predictor_real_width(real_width, kind, batch, multimask):
    backend, state, predictor = real_width
    assert backend.fast_decoder
    boxes, points, labels = _prompts(np.random.default_rng(batch), batch, kind)
    ours = backend.decode(state, boxes=boxes, points=points, point_labels=labels, multimask=multimask)
    _assert_close(ours, *_reference(predictor, boxes, points, labels, multimask))


@pytest.mark.parametrize("points_per_prompt", [12, 40])  # 8 heads x (5 + 12..13) tokens >= 128; x 45 >= 256
def test_many_tokens_take_the_unfolded_paths(real_width, points_per_prompt):
    backend, state, predictor = real_width
    boxes, points, labels = _prompts(np.random.default_rng(7), 3, "boxes+points", points_per_prompt)
    for multimask in (False, True):
        ours = backend.decode(state, boxes=boxes, points=points, point_labels=labels, multimask=multimask)
        _assert_close(ours, *_reference(predictor, boxes, points, labels, multimask))


@pytest.mark.parametrize("kind", ["boxes", "points", "boxes+points"])
def test_equals_predictor_other_geometry(narrow, kind):
    backend, state, predictor = narrow
    boxes, points, labels = _prompts(np.random.default_rng(11), 5, kind, points_per_prompt=4)
    for multimask in (False, True):
        ours = backend.decode(state, boxes=boxes, points=points, point_labels=labels, multimask=multimask)
        _assert_close(ours, *_reference(predictor, boxes, points, labels, multimask))


def test_batch_rows_are_independent(real_width):
    """Decoding prompts together or one by one gives the same rows (no mixing across the batch)."""
    backend, state, _ = real_width
    boxes, points, labels = _prompts(np.random.default_rng(5), 4, "boxes+points")
    together = backend.decode(state, boxes=boxes, points=points, point_labels=labels, multimask=True)
    for i in range(4):
        one = backend.decode(state, boxes=boxes[i : i + 1], points=points[i : i + 1],
                             point_labels=labels[i : i + 1], multimask=True)
        assert torch.allclose(one.low_res_logits[0], together.low_res_logits[i], atol=1e-5)


def test_reference_path_is_segment_anything(image, real_width):
    """``fast_decoder=False`` runs segment-anything's own MaskDecoder (the same numbers as SamPredictor)."""
    _, _, predictor = real_width
    backend = SamBackend(model=build_tiny_sam(seed=3), model_type="tiny", device="cpu", fast_decoder=False)
    state = backend.encode(image)
    boxes, points, labels = _prompts(np.random.default_rng(2), 2, "boxes+points")
    ours = backend.decode(state, boxes=boxes, points=points, point_labels=labels, multimask=True)
    low, iou = _reference(predictor, boxes, points, labels, True)
    assert torch.allclose(ours.low_res_logits, low, atol=1e-6) and torch.allclose(ours.iou, iou, atol=1e-6)
    assert "sam_decoder_context" not in state.extra


def test_context_is_computed_once_per_frame(image, real_width, monkeypatch):
    backend, _, _ = real_width
    state = backend.encode(image)
    calls = []
    prepare = fast_decoder.prepare_context
    monkeypatch.setattr(fast_decoder, "prepare_context", lambda *a: calls.append(1) or prepare(*a))
    boxes, _, _ = _prompts(np.random.default_rng(0), 2, "boxes")
    backend.decode(state, boxes=boxes)
    backend.decode(state, boxes=boxes, multimask=True)
    assert len(calls) == 1
    ctx = backend.decoder_context(state)
    assert ctx.src.shape == (64 * 64, 256) and ctx.k0.shape == (8, 16, 64 * 64)  # (heads, d, HW)
    backend.encode(image)  # a new frame gets its own context
    backend.decode(backend.encode(image), boxes=boxes)
    assert len(calls) == 2


def test_upsample_equals_full_upscaling(real_width):
    """SamBackend.upsample (only the image part upscaled) is bit-identical to the generic full-frame version."""
    backend, state, _ = real_width
    logits = torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert torch.equal(backend.upsample(state, logits), PromptableSegmenter.upsample(backend, state, logits))
    for size in [(480, 854), (854, 480), (300, 300), (17, 1001)]:
        state2 = backend.encode(np.zeros((*size, 3), dtype=np.uint8))
        assert torch.equal(backend.upsample(state2, logits), PromptableSegmenter.upsample(backend, state2, logits))


def test_sdpa_encoder_attention_is_the_same_function(image):
    """SamBackend(sdpa=True): the ViT encoder's attention through scaled_dot_product_attention (rel-pos as mask),
    the default on the CPU, against segment-anything's own attention (sdpa=False)."""
    plain = SamBackend(model=build_tiny_sam(seed=3), model_type="tiny", device="cpu", sdpa=False)
    fused = SamBackend(model=build_tiny_sam(seed=3), model_type="tiny", device="cpu")
    assert fused.sdpa and not plain.sdpa
    assert torch.allclose(fused.encode(image).embedding, plain.encode(image).embedding, atol=1e-5)
