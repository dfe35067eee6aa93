"""End to end on the tiny random-init SAM built from segment-anything's own modules: a 30-frame generated video runs
through the exact production path (SamBackend encode/decode/upsample, the tracker's two batched stages). Random
weights give meaningless masks, so this checks the code path, shapes and decoder-call counts, not quality."""

import numpy as np
import pytest

from sampd_plugin.backends.tiny import tiny_backend
from sampd_plugin.config import SamPDConfig
from sampd_plugin.synthetic import SyntheticScene
from sampd_plugin.tracker import ObjectPrompt, SamPDTracker


@pytest.fixture(scope="module")
def backend():
    # a 256-px input and a narrow decoder keep CI fast on 2 cores; every line of the path is the production one
    # (benchmarks/speed.py times SAM's real 1024-px input and decoder width)
    return tiny_backend(seed=0, device="cpu", prompt_embed_dim=32, img_size=256, encoder_window_size=4)


@pytest.mark.parametrize("num_objects", [1, 3])
def test_tiny_sam_30_frames_two_decoder_calls_per_frame(backend, num_objects):
    scene = SyntheticScene(seed=3, num_frames=30, num_objects=num_objects, height=96, width=128)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    assert len(prompts) == num_objects
    backend.reset_counters()
    results = list(SamPDTracker(backend, SamPDConfig(decode_batch_size=0)).track(scene.iter_frames(), prompts))
    assert [r.frame_number for r in results] == list(range(1, 31))
    assert backend.encode_calls == 30
    for r in results[1:]:
        assert set(r.objects) == {p.object_id for p in prompts}
        assert r.decode_calls == 2, (r.frame_number, r.decode_calls)
        assert r.decoded_prompts == 18 * num_objects + num_objects
        for o in r.objects.values():
            assert o.mask.shape == (96, 128) and o.mask.dtype == bool
            assert np.isfinite(o.iou)
            if not o.lost:
                assert o.box is not None and o.mask.any()


def test_tiny_sam_cpu_default_batch_splits_decoder_calls(backend):
    scene = SyntheticScene(seed=3, num_frames=3, num_objects=3, height=120, width=160)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    results = list(SamPDTracker(backend).track(scene.iter_frames(), prompts))
    size = backend.preferred_batch_size
    assert size is not None  # measured CPU preference
    for r in results[1:]:
        assert r.decode_calls == -(-54 // size) + 1
