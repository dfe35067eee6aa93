"""The MobileSAM backend (random weights): SamPredictor's steps through SamBackend, checkpoint handling, registry."""
import numpy as np
import pytest
import torch

pytest.importorskip("mobile_sam")

from segment_anything import SamPredictor  # noqa: E402

from sampd_plugin.backends import checkpoints as ckpt  # noqa: E402
from sampd_plugin.backends.fast_decoder import LOGIT_TOLERANCE  # noqa: E402
from sampd_plugin.backends.mobile_sam import build_mobile_sam, load_mobile_sam  # noqa: E402
from sampd_plugin.backends.registry import BackendCache, check_model, checkpoint_status  # noqa: E402
from sampd_plugin.core.prompts import sam_box  # noqa: E402

H, W = 72, 128


@pytest.fixture(scope="module")
def image():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[10:50, 30:90] = (220, 30, 30)
    return img


@pytest.fixture(scope="module")
def backend():
    return load_mobile_sam(random_weights=True, seed=0, device="cpu")


@pytest.fixture
def no_download(tmp_path, monkeypatch):
    monkeypatch.delenv(ckpt.CHECKPOINT_DIR_ENV, raising=False)
    monkeypatch.setenv(ckpt.CACHE_DIR_ENV, str(tmp_path / "cache"))

    def fail(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(ckpt, "_download_url", fail)
    monkeypatch.setattr(ckpt, "_download_with_zoo", fail)
    return tmp_path


def test_random_model_is_seeded_and_keeps_global_rng(backend):
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, c = build_mobile_sam(0), build_mobile_sam(1)
    assert torch.equal(torch.rand(1), before)
    sa, sb, sc = a.state_dict(), backend.model.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert type(a.image_encoder).__name__ == "TinyViT" and not a.training


def test_same_steps_as_sam_predictor(backend, image):
    state = backend.encode(image)
    assert state.embedding.shape == (256, 64, 64) and state.input_size == (576, 1024)
    # SamPredictor on the same model and frame (its set_image steps are checked on the tiny SAM in
    # test_sam_backend.py; here its encoding is taken from ours to save a second TinyViT pass on the CPU)
    predictor = SamPredictor(backend.model)
    predictor.features, predictor.is_image_set = state.embedding[None], True
    predictor.original_size, predictor.input_size = (H, W), state.input_size
    boxes = torch.tensor([[30.0, 10.0, 90.0, 50.0], [5.0, 5.0, 60.0, 70.0]])
    points = torch.tensor([[[60.0, 30.0], [0.0, 0.0]], [[20.0, 20.0], [100.0, 60.0]]])
    labels = torch.tensor([[1, -1], [1, 0]])
    for multimask in (False, True):
        ours = backend.decode(state, boxes=boxes, points=points, point_labels=labels, multimask=multimask)
        size = predictor.original_size
        _, iou, low = predictor.predict_torch(predictor.transform.apply_coords_torch(points, size), labels,
                                              predictor.transform.apply_boxes_torch(sam_box(boxes), size),
                                              multimask_output=multimask)
        scale = max(1.0, float(low.abs().max()))
        assert float((ours.low_res_logits - low).abs().max()) <= LOGIT_TOLERANCE * scale
        assert float((ours.iou - iou).abs().max()) <= LOGIT_TOLERANCE


def test_checkpoint_file_and_search(backend, no_download, monkeypatch):
    info = ckpt.checkpoint_info("mobile_sam")
    assert info.filename == "mobile_sam.pt" and info.zoo_name is None and info.md5_prefix is None
    with pytest.raises(ckpt.CheckpointNotFoundError, match="mobile_sam.pt") as e:
        load_mobile_sam(device="cpu")
    assert info.url in str(e.value)
    folder = no_download / "weights"
    folder.mkdir()
    torch.save(backend.model.state_dict(), folder / "mobile_sam.pt")
    monkeypatch.setenv(ckpt.CHECKPOINT_DIR_ENV, str(folder))
    loaded = load_mobile_sam(device="cpu")  # found through $SAMPD_CHECKPOINT_DIR
    theirs, ours = loaded.model.state_dict(), backend.model.state_dict()
    assert loaded.model_type == "mobile_sam" and all(torch.equal(theirs[k], ours[k]) for k in ours)
    assert checkpoint_status("mobile_sam") == f"checkpoint: {folder / 'mobile_sam.pt'}"
    cached = BackendCache("mobile_sam", checkpoint=str(folder / "mobile_sam.pt"), device="cpu").get()
    assert cached.model_type == "mobile_sam"


def test_wrong_checkpoint_is_refused(no_download):
    from sampd_plugin.backends.tiny import build_tiny_sam

    path = no_download / "tiny.pt"
    torch.save(build_tiny_sam().state_dict(), path)
    with pytest.raises(ckpt.CheckpointLoadError, match="mobile_sam"):
        load_mobile_sam(checkpoint=str(path), device="cpu")
    with pytest.raises(ValueError, match="not both"):
        load_mobile_sam(checkpoint=str(path), random_weights=True)


def test_registry_accepts_a_checkpoint_for_mobile_sam():
    check_model("mobile_sam", "/some/mobile_sam.pt")
    with pytest.raises(ValueError, match="takes no checkpoint"):
        check_model("tiny", "/some/file.pt")
