"""SamBackend on the tiny random-weight SAM (same code path as a real checkpoint) and checkpoint resolution/loading.

The decoder is SAM's real-width one, so each decoded prompt costs ~0.1-0.5 s on a small CPU: prompt batches are
kept small and the encoded frame is shared (module-scoped fixtures).
"""
import dataclasses
import os

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.utils.amg import batched_mask_to_box
from segment_anything.utils.transforms import ResizeLongestSide

from sampd_plugin.backends import checkpoints as ckpt
from sampd_plugin.backends import sam as sam_mod
from sampd_plugin.backends.base import ImageState, foreground
from sampd_plugin.backends.sam import CPU_PREFERRED_BATCH_SIZE, SamBackend
from sampd_plugin.backends.tiny import build_tiny_sam, tiny_backend
from sampd_plugin.core.prompts import mask_to_box, sam_box

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

H, W = 120, 200  # non-square: input frame 614 x 1024 inside the 1024 x 1024 padded square


@pytest.fixture(scope="module")
def backend():
    return tiny_backend(seed=0)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[30:90, 50:150] = (200, 40, 40)
    return img


@pytest.fixture(scope="module")
def state(backend, image):
    return backend.encode(image, frame_number=1)


@pytest.fixture(scope="module")
def predictor(backend, image):
    """segment-anything's own predictor on the same model and image: the reference."""
    p = SamPredictor(backend.model)
    p.set_image(image)
    return p


def reference(predictor, boxes=None, points=None, labels=None, multimask=False):
    """SamPredictor.predict_torch with prompts mapped from image pixels as SamPredictor.predict does."""
    size = predictor.original_size
    masks, iou, low = predictor.predict_torch(
        None if points is None else predictor.transform.apply_coords_torch(points, size),
        None if labels is None else labels.int(),
        None if boxes is None else predictor.transform.apply_boxes_torch(boxes, size),
        multimask_output=multimask,
    )
    return masks, iou, low


BOXES = torch.tensor([[50.0, 30.0, 150.0, 90.0], [10.5, 5.0, 80.0, 110.0]])
POINTS = torch.tensor([[[100.0, 60.0], [20.0, 20.0], [0.0, 0.0]], [[60.0, 40.0], [0.0, 0.0], [0.0, 0.0]]])
POINT_LABELS = torch.tensor([[1, 0, -1], [1, -1, -1]])


# --- model and encoding ----------------------------------------------------------------------------------------
def test_tiny_sam_is_deterministic_by_seed_and_keeps_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = build_tiny_sam(seed=0), build_tiny_sam(seed=0), build_tiny_sam(seed=1)
    assert torch.equal(torch.rand(1), before)  # global RNG untouched
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training


def test_encode_shapes_and_geometry(backend, state, predictor):
    assert backend.device == torch.device("cpu")
    assert backend.preferred_batch_size == CPU_PREFERRED_BATCH_SIZE
    assert state.embedding.shape == (256, 64, 64) and state.embedding.dtype == torch.float32
    assert state.image_size == (H, W) and state.input_size == (614, 1024)
    assert (state.embed_stride, state.mask_stride, state.frame_number) == (16, 4, 1)
    # same features as SamPredictor.set_image
    assert torch.allclose(state.embedding[None], predictor.features, atol=1e-5)


def test_prepare_is_segment_anythings_preprocessing_and_encode_of_it_equals_set_image(backend, image, state,
                                                                                      predictor):
    prepared = backend.prepare(image)
    x = torch.as_tensor(ResizeLongestSide(1024).apply_image(image)).permute(2, 0, 1).contiguous()[None]
    assert torch.equal(prepared.data.pixels, backend.model.preprocess(x))  # SamPredictor.set_image's steps, exactly
    assert prepared.data.pixels.shape == (1, 3, 1024, 1024) and prepared.image_size == (H, W)
    again = backend.encode(prepared, frame_number=1)
    assert torch.equal(again.embedding, state.embedding)  # the same as encoding the image
    assert (again.image_size, again.input_size) == (state.image_size, state.input_size)
    assert torch.allclose(again.embedding[None], predictor.features, atol=1e-5)


def test_encode_is_deterministic(image, state):
    other = tiny_backend(seed=0).encode(image)
    assert torch.allclose(other.embedding, state.embedding, atol=1e-6)


@pytest.mark.parametrize("multimask,k", [(False, 1), (True, 3)])
def test_decode_shapes(backend, state, multimask, k):
    out = backend.decode(state, boxes=BOXES, multimask=multimask)
    assert out.low_res_logits.shape == (2, k, 256, 256) and out.iou.shape == (2, k)
    masks = backend.upsample(state, out.low_res_logits[:, 0])
    assert masks.shape == (2, H, W) and masks.dtype == torch.bool


def test_decode_empty_batch(backend, state):
    out = backend.decode(state, boxes=torch.zeros((0, 4)), multimask=True)
    assert out.low_res_logits.shape == (0, 3, 256, 256) and out.iou.shape == (0, 3)


# --- same code path as SamPredictor ---------------------------------------------------------------------------
def test_decode_boxes_equals_predictor(backend, state, predictor):
    ours = backend.decode(state, boxes=BOXES, multimask=True)
    masks, iou, low = reference(predictor, boxes=sam_box(BOXES), multimask=True)
    assert torch.allclose(ours.low_res_logits, low, atol=1e-4)
    assert torch.allclose(ours.iou, iou, atol=1e-5)
    # upsample == Sam.postprocess_masks > mask_threshold, on the non-square image
    for k in range(3):
        up = backend.upsample(state, ours.low_res_logits[:, k])
        assert up.shape == masks[:, k].shape
        assert (up != masks[:, k]).float().mean() < 1e-4  # identical up to ties at the 0 threshold


def test_decode_points_with_padding_equals_predictor(backend, state, predictor):
    ours = backend.decode(state, points=POINTS, point_labels=POINT_LABELS, multimask=True)
    _, iou, low = reference(predictor, points=POINTS, labels=POINT_LABELS, multimask=True)
    assert torch.allclose(ours.low_res_logits, low, atol=1e-4) and torch.allclose(ours.iou, iou, atol=1e-5)
    # -1 points really are SAM's "not a point": moving a padding point changes nothing
    moved = POINTS.clone()
    moved[1, 1:] = torch.tensor([150.0, 100.0])
    again = backend.decode(state, points=moved[1:], point_labels=POINT_LABELS[1:], multimask=True)
    assert torch.allclose(again.low_res_logits, ours.low_res_logits[1:], atol=1e-4)


def test_decode_box_and_negative_points_equals_predictor(backend, state, predictor):
    points, labels = POINTS[:, :2], torch.tensor([[1, 0], [0, -1]])
    ours = backend.decode(state, boxes=BOXES, points=points, point_labels=labels, multimask=False)
    _, iou, low = reference(predictor, boxes=sam_box(BOXES), points=points, labels=labels, multimask=False)
    assert torch.allclose(ours.low_res_logits, low, atol=1e-4) and torch.allclose(ours.iou, iou, atol=1e-5)


def test_box_of_a_mask_reaches_sam_as_batched_mask_to_box(backend, state, predictor):
    """The box SAM was trained on (right/bottom on the last mask pixel), not one pixel past it."""
    masks = np.zeros((2, H, W), bool)
    masks[0, 30:90, 50:150] = True
    masks[1, 5:11, 170:177] = True
    ours = backend.decode(state, boxes=torch.as_tensor(np.stack([mask_to_box(m) for m in masks])))
    sams = batched_mask_to_box(torch.as_tensor(masks)).float()
    assert sams[1].tolist() == [170, 5, 176, 10]
    _, iou, low = reference(predictor, boxes=sams)
    assert torch.allclose(ours.low_res_logits, low, atol=1e-4) and torch.allclose(ours.iou, iou, atol=1e-5)
    # one pixel past the mask (the library's exclusive ends handed over unconverted) is a different prompt
    _, _, past = reference(predictor, boxes=sams + torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert not torch.allclose(past, low, atol=1e-4)


# --- SAM's input geometry on the embedding / mask grids -------------------------------------------------------
def sam_state(h: int, w: int) -> ImageState:
    """An ImageState with SAM's geometry for an h x w frame (1024-px padded input, 16-px cells, 4-px mask cells)."""
    h_in, w_in = ResizeLongestSide.get_preprocess_shape(h, w, 1024)
    return ImageState(torch.zeros(1, 64, 64), (h, w), (h_in, w_in), 16, 4)


def sampled_cell_fractions(mask: np.ndarray, state: ImageState, stride: int, sub: int = 256) -> np.ndarray:
    """Brute force by point sampling: ``sub`` sample lines per cell side over the padded input frame, each mapped
    back to the image row / column it lies in (input pixel ``v`` <-> image ``v / s``); padding samples are
    background. Separable, so written as ``Sy @ mask @ Sx.T`` with sample-count matrices."""
    n = 1024 // stride

    def counts(size, size_in):
        v = (np.arange(n * sub) + 0.5) * stride / sub  # sample coordinates, input-frame pixels
        keep = v < size_in
        m = np.zeros((n, size))
        np.add.at(m, ((v[keep] // stride).astype(int), np.floor(v[keep] * size / size_in).astype(int)), 1.0 / sub)
        return m

    (h, w), (h_in, w_in) = state.image_size, state.input_size
    return counts(h, h_in) @ mask.astype(np.float64) @ counts(w, w_in).T


@pytest.mark.parametrize("h, w", [(500, 700), (480, 854), (720, 1280), (700, 500)])
def test_mask_to_grid_is_aligned_with_sams_resize_and_padding(h, w):
    state = sam_state(h, w)
    h_in, w_in = state.input_size
    # the whole frame: full cells inside the resized image, the straddling cell partly, padding empty
    full = state.mask_to_grid(torch.ones(1, h, w, dtype=torch.bool), 16)[0]
    rows, cols = -(-h_in // 16), -(-w_in // 16)
    assert full[: h_in // 16, : w_in // 16].min() == pytest.approx(1.0, abs=1e-5)
    if h_in % 16:
        assert full[rows - 1, 0].item() == pytest.approx((h_in % 16) / 16, abs=1e-5)
    if w_in % 16:
        assert full[0, cols - 1].item() == pytest.approx((w_in % 16) / 16, abs=1e-5)
    assert full[rows:].abs().sum() == 0 and full[:, cols:].abs().sum() == 0
    # an irregular mask reaching the bottom-right corner, on the embedding and on the mask grid
    rng = np.random.default_rng(h + w)
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - 0.7 * h) ** 2 / (0.3 * h) ** 2 + (xx - 0.6 * w) ** 2 / (0.45 * w) ** 2 < 1) | (
        rng.random((h, w)) < 0.02
    )
    for stride in (16, 4):
        got = state.mask_to_grid(torch.as_tensor(mask)[None], stride)[0].numpy()
        ref = sampled_cell_fractions(mask, state, stride)
        assert np.abs(got - ref).max() < 0.006, (stride, np.abs(got - ref).max())  # sampling error only
        assert got.sum() * stride**2 == pytest.approx(mask.sum() * (h_in / h) * (w_in / w), rel=1e-4)


@pytest.mark.parametrize("ratio, size", [(4, (256, 256)), (2, (63, 66)), (16, (64, 80)), (1, (8, 8))])
def test_logits_to_embedding_grid_is_the_cells_foreground_fraction(ratio, size):
    """Byte counts of each cell's foreground (issue 22: no float copy of all candidates) give avg_pool2d's values
    exactly, for SAM's 4 low-resolution cells per embedding cell and other ratios, sizes not multiples of it."""
    state = dataclasses.replace(sam_state(H, W), embed_stride=4 * ratio, mask_stride=4)
    logits = torch.randn(5, *size, generator=torch.Generator().manual_seed(ratio)) - 0.3
    logits[0] = 1.0  # all foreground: full cells (k * k = 256 pixels for 16)
    fg = (logits > 0).float()[:, None]
    ref = torch.nn.functional.avg_pool2d(fg, ratio, ratio)[:, 0] if ratio > 1 else fg[:, 0]
    assert torch.equal(state.logits_to_embedding_grid(logits), ref)
    assert torch.equal(state.logits_to_embedding_grid(logits.half()), ref)


@pytest.mark.parametrize("ratio", [4, 2, 3, 1])
def test_logits_to_embedding_windows_are_the_grids_on_each_objects_union_box(ratio):
    """Issue 22: each object's candidates counted only on the union box of their foreground cells give exactly the
    whole grids' values there, and the box is the union of the grids' non-zero cells (all-empty objects: None);
    small windows (avg_pool2d) and large ones (byte counts) alike."""
    state = dataclasses.replace(sam_state(H, W), embed_stride=4 * ratio, mask_stride=4)
    gen = torch.Generator().manual_seed(ratio)
    logits = torch.full((4, 18, 66, 70), -1.0)
    logits[0, :, 10:14, 20:23] = torch.randn(18, 4, 3, generator=gen)  # a few cells
    logits[1] = torch.randn(18, 66, 70, generator=gen) - 0.5  # most of the grid
    logits[2, 3, 60:, 64:] = 1.0  # one candidate in the corner, past the whole cells
    n, g, h, w = logits.shape
    grids = state.logits_to_embedding_grid(logits.reshape(n * g, h, w)).view(n, g, h // ratio, w // ratio)
    windows = state.logits_to_embedding_windows(logits)
    for grid, window in zip(grids, windows):
        cells = grid.amax(0).nonzero()
        if window is None:
            assert len(cells) == 0
            continue
        y0, x0, part = window
        assert cells.min(0).values.tolist() == [y0, x0]
        assert (cells.max(0).values + 1).tolist() == [y0 + part.shape[1], x0 + part.shape[2]]
        assert torch.equal(part, grid[:, y0:y0 + part.shape[1], x0:x0 + part.shape[2]])
    assert windows[3] is None and windows[0][2].shape[1:] == (-(-14 // ratio) - 10 // ratio, -(-23 // ratio) - 20 // ratio)


def test_foreground_is_logits_above_zero():
    """``foreground`` (numpy on the CPU) thresholds exactly as ``logits > 0``: zeros of both signs, NaN, infinities,
    non-contiguous views and other dtypes."""
    x = torch.tensor([[0.0, -0.0, 1e-45, -1e-45, float("nan"), float("inf"), -float("inf"), 3.0]]).repeat(3, 1)
    for t in (x, x.t(), x[:, ::2], x.half(), x.double()):
        assert torch.equal(foreground(t), t > 0) and foreground(t).dtype == torch.bool


def test_counters(backend, state, image):
    backend.reset_counters()
    backend.encode(image)
    backend.decode(state, boxes=BOXES[:1])
    backend.decode(state, points=POINTS, point_labels=POINT_LABELS)
    assert (backend.encode_calls, backend.decode_calls, backend.decoded_prompts) == (1, 2, 3)
    with pytest.raises(ValueError):
        backend.decode(state)
    assert backend.decode_calls == 2


def test_generate_masks(backend, image):
    backend.reset_counters()
    masks = backend.generate_masks(
        image, max_masks=3, points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    assert 0 < len(masks) <= 3
    assert all(m.shape == (H, W) and m.dtype == bool for m in masks)
    assert backend.encode_calls == 1 and backend.decoded_prompts == 4  # 2x2 point grid, through this backend
    assert backend.generate_masks(image, max_masks=0, points_per_side=2) == []


def test_half_is_ignored_with_a_warning_on_cpu():
    with pytest.warns(UserWarning, match="CUDA"):
        b = SamBackend(model=build_tiny_sam(), device="cpu", half=True)
    assert b.autocast_dtype is None and b.preferred_batch_size == CPU_PREFERRED_BATCH_SIZE


# --- checkpoints -----------------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated checkpoint locations: env dir, sampd cache, FiftyOne zoo dir (all empty tmp dirs)."""
    d = {name: tmp_path / name for name in ("env", "cache", "zoo")}
    for p in d.values():
        p.mkdir()
    monkeypatch.delenv(ckpt.CHECKPOINT_DIR_ENV, raising=False)
    monkeypatch.setenv(ckpt.CACHE_DIR_ENV, str(d["cache"]))
    fo = pytest.importorskip("fiftyone")
    monkeypatch.setattr(fo.config, "model_zoo_dir", str(d["zoo"]))

    def no_download(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(ckpt, "_download_with_zoo", no_download)
    monkeypatch.setattr(ckpt, "_download_url", no_download)
    return d


def sparse_file(path, size):
    """A file of ``size`` bytes without writing them."""
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def test_official_checkpoints():
    info = ckpt.checkpoint_info("vit_h")
    assert info.filename == "sam_vit_h_4b8939.pth" and info.url == ckpt.URL_ROOT + info.filename
    assert ckpt.checkpoint_info("default") == info and info.md5_prefix == "4b8939"
    assert [ckpt.checkpoint_info(t).filename for t in ("vit_l", "vit_b")] == [
        "sam_vit_l_0b3195.pth", "sam_vit_b_01ec64.pth"]
    assert ckpt.CHECKPOINTS["vit_b"].url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    with pytest.raises(ValueError, match="vit_x"):
        ckpt.checkpoint_info("vit_x")


def test_explicit_checkpoint(env, tmp_path):
    path = sparse_file(tmp_path / "mine.pth", 10)
    sparse_file(env["env"] / "sam_vit_b_01ec64.pth", 10)
    assert ckpt.resolve_checkpoint("vit_b", checkpoint=path) == path  # explicit wins
    missing = str(tmp_path / "nope" / "sam.pth")
    with pytest.raises(ckpt.CheckpointNotFoundError, match="nope") as e:
        ckpt.resolve_checkpoint("vit_b", checkpoint=missing)
    assert isinstance(e.value, FileNotFoundError) and missing in str(e.value)


def test_resolution_order(env, monkeypatch):
    info = ckpt.CHECKPOINTS["vit_b"]
    zoo = sparse_file(env["zoo"] / info.filename, info.size_bytes)
    assert ckpt.resolve_checkpoint("vit_b") == zoo  # FiftyOne zoo cache
    monkeypatch.setenv(ckpt.CHECKPOINT_DIR_ENV, str(env["env"]))
    assert ckpt.resolve_checkpoint("vit_b") == zoo  # env dir without the file: next place
    in_env = sparse_file(env["env"] / info.filename, 10)
    assert ckpt.resolve_checkpoint("vit_b") == in_env  # env dir before the zoo
    monkeypatch.delenv(ckpt.CHECKPOINT_DIR_ENV)
    os.remove(zoo)
    own = sparse_file(env["cache"] / info.filename, info.size_bytes)
    assert ckpt.resolve_checkpoint("vit_b", download=False) == own  # sampd cache


def test_interrupted_zoo_download_is_fetched_again(env, monkeypatch):
    info = ckpt.CHECKPOINTS["vit_b"]
    zoo = sparse_file(env["zoo"] / info.filename, 1000)  # truncated
    with pytest.raises(ckpt.CheckpointNotFoundError, match="1000 bytes"):
        ckpt.resolve_checkpoint("vit_b", download=False)
    calls = []

    def fake_zoo_download(i, overwrite=False):
        calls.append((i.zoo_name, overwrite))
        return sparse_file(zoo, i.size_bytes)

    monkeypatch.setattr(ckpt, "_download_with_zoo", fake_zoo_download)
    assert ckpt.resolve_checkpoint("vit_b") == zoo and calls == [("segment-anything-vitb-torch", True)]


def test_offline_error_message_with_fiftyone(env):
    with pytest.raises(ckpt.CheckpointNotFoundError) as e:
        ckpt.resolve_checkpoint("vit_h")
    msg = str(e.value)
    for part in ("sam_vit_h_4b8939.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                 "SAMPD_CHECKPOINT_DIR", str(env["zoo"] / "sam_vit_h_4b8939.pth"), "--checkpoint PATH",
                 "network is unreachable"):
        assert part in msg, part


def test_offline_error_message_without_fiftyone(env, monkeypatch):
    monkeypatch.setattr(ckpt, "_import_fiftyone", lambda: None)
    monkeypatch.setenv(ckpt.CHECKPOINT_DIR_ENV, str(env["env"]))
    with pytest.raises(ckpt.CheckpointNotFoundError) as e:
        ckpt.resolve_checkpoint("vit_l")
    msg = str(e.value)
    for part in ("sam_vit_l_0b3195.pth", ckpt.CHECKPOINTS["vit_l"].url, "SAMPD_CHECKPOINT_DIR",
                 str(env["env"] / "sam_vit_l_0b3195.pth"), str(env["cache"] / "sam_vit_l_0b3195.pth"), "--checkpoint"):
        assert part in msg, part
    with pytest.raises(ckpt.CheckpointNotFoundError, match="download=False"):
        ckpt.resolve_checkpoint("vit_l", download=False)


def test_url_download_fallback_checks_size_and_md5_prefix(env, monkeypatch):
    monkeypatch.setattr(ckpt, "_import_fiftyone", lambda: None)
    info = dataclasses.replace(ckpt.CHECKPOINTS["vit_b"], size_bytes=1000)
    monkeypatch.setitem(ckpt.CHECKPOINTS, "vit_b", info)
    got = []

    def fake_download(url, dst, size=1000):
        got.append((url, dst))
        sparse_file(dst, size)

    monkeypatch.setattr(ckpt, "_download_url", fake_download)
    with pytest.warns(UserWarning, match="MD5"):  # zeros do not hash to 01ec64...
        path = ckpt.resolve_checkpoint("vit_b")
    assert path == str(env["cache"] / info.filename) and got == [(info.url, path)]
    os.remove(path)
    monkeypatch.setattr(ckpt, "_download_url", lambda url, dst: fake_download(url, dst, size=10))
    with pytest.raises(ckpt.CheckpointNotFoundError, match="incomplete"):
        ckpt.resolve_checkpoint("vit_b")
    assert not os.path.exists(path)  # the partial file is not left behind


def test_checkpoint_loads_back_through_load_sam(tmp_path):
    path = str(tmp_path / "tiny.pth")
    reference_model = build_tiny_sam(seed=0)
    torch.save(reference_model.state_dict(), path)
    backend = sam_mod.load_sam("vit_b", checkpoint=path, device="cpu", builder=lambda: build_tiny_sam(seed=1))
    assert isinstance(backend, SamBackend) and not backend.model.training
    ref = reference_model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in backend.model.state_dict().items())
    # wrong architecture, corrupt file: clear errors
    with pytest.raises(ckpt.CheckpointLoadError, match="does not fit"):
        sam_mod.build_sam_model("vit_b", checkpoint=path, builder=lambda: build_tiny_sam(encoder_embed_dim=32))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointLoadError, match="bad.pth"):
        sam_mod.load_sam("vit_b", checkpoint=str(bad), builder=build_tiny_sam)


def test_sam_backend_without_model_resolves_checkpoint(env):
    with pytest.raises(ckpt.CheckpointNotFoundError, match="sam_vit_b_01ec64.pth"):
        SamBackend(model_type="vit_b", download=False)
