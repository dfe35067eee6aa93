"""End to end on the tiny random-init SAM built from segment-anything's own modules: a 30-frame generated video runs
through the exact production path (SamBackend encode/decode/upsample, the tracker's two batched stages). Random
weights give meaningless masks, so this checks the code path, shapes, decoder-call counts and batching exactness,
not quality."""

import math

import numpy as np
import pytest
import torch

from sampd_plugin.backends.tiny import tiny_backend
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker, decode_prompts
from sampd_plugin.synthetic import SyntheticScene


@pytest.fixture(scope="module")
def backend():
    # a 256-px input and a narrow decoder keep CI fast on 2 cores; every line of the path is the production one
    # (perf/speed.py times SAM's real 1024-px input and decoder width)
    return tiny_backend(seed=0, device="cpu", prompt_embed_dim=32, img_size=256, encoder_window_size=4)


@pytest.fixture
def calls(backend, monkeypatch):
    """Records every decoder call: ``(frame_number, multimask, batch, points per prompt, labels)``."""
    log = []
    inner = backend._decode

    def spy(state, boxes, points, point_labels, multimask):
        batch = (boxes if boxes is not None else points).shape[0]
        p = 0 if points is None else points.shape[1]
        log.append((state.frame_number, multimask, batch, p, None if point_labels is None else point_labels.clone()))
        return inner(state, boxes, points, point_labels, multimask)

    monkeypatch.setattr(backend, "_decode", spy)
    return log


def expected_calls(log, frame, batch_size=0):
    """The exact batching rule, from the recorded prompts of one frame: per stage, per distinct point count P,
    ``ceil(n_P / batch_size)`` calls (one when unlimited)."""
    total = 0
    for stage in (False, True):
        per_p = {}
        for f, mm, b, p, _ in log:
            if f == frame and mm == stage:
                per_p[p] = per_p.get(p, 0) + b
        total += sum(1 if batch_size == 0 else math.ceil(n / batch_size) for n in per_p.values())
    return total


@pytest.mark.parametrize("num_objects", [1, 3])
def test_tiny_sam_30_frames_one_call_per_stage_and_point_count(backend, calls, num_objects):
    scene = SyntheticScene(seed=3, num_frames=30, num_objects=num_objects, height=96, width=128)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    assert len(prompts) == num_objects
    backend.reset_counters()
    results = list(SamPDTracker(backend, SamPDConfig(decode_batch_size=0)).track(scene.iter_frames(), prompts))
    assert [r.frame_number for r in results] == list(range(1, 31))
    assert backend.encode_calls == 30
    for r in results[1:]:
        assert set(r.objects) == {p.object_id for p in prompts}
        mine = [c for c in calls if c[0] == r.frame_number]
        for stage in (False, True):  # one call per distinct point count in each stage
            counts = [p for _, mm, _, p, _ in mine if mm == stage]
            assert len(counts) == len(set(counts)) >= 1, (r.frame_number, stage, counts)
        assert r.decode_calls == len(mine) == expected_calls(calls, r.frame_number)
        if num_objects == 1:
            assert r.decode_calls == 2  # no other object: no negatives, one count per stage
        assert all(lab is None or (lab >= 0).all() for *_, lab in mine)  # never SAM's "not a point" token
        assert r.decoded_prompts == 18 * num_objects + num_objects
        for o in r.objects.values():
            assert o.mask.shape == (96, 128) and o.mask.dtype == bool
            assert np.isfinite(o.iou)
            if not o.lost:
                assert o.box is not None and o.mask.any()


def test_tiny_sam_cpu_default_batch_splits_decoder_calls(backend, calls):
    scene = SyntheticScene(seed=3, num_frames=3, num_objects=3, height=120, width=160)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    results = list(SamPDTracker(backend).track(scene.iter_frames(), prompts))
    size = backend.preferred_batch_size
    assert size is not None  # measured CPU preference
    for r in results[1:]:
        assert r.decode_calls == expected_calls(calls, r.frame_number, size) >= -(-54 // size) + 1
        assert all(b <= size for f, _, b, _, _ in calls if f == r.frame_number)


def test_an_objects_masks_do_not_depend_on_its_batch_mates(backend):
    """Issue 9: padding point lists with "not a point" tokens changed SAM's output; grouping by point count does
    not (batched GEMMs may differ from a batch of one in the last float bit, nothing more)."""
    rng = np.random.default_rng(0)
    state = backend.encode(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), 1)
    boxes = torch.tensor([[10.0, 10.0, 50.0, 40.0], [60.0, 20.0, 100.0, 70.0], [30.0, 50.0, 90.0, 90.0]])
    negs = [np.array([[70, 30]]), np.array([[20, 20], [40, 60]]), np.array([[80, 80]])]
    # first stage: object 0 alone, then behind an object with one more negative point and one with as many
    alone = decode_prompts(backend, state, boxes[:1], [None], negs[:1])
    for size in (0, 1, 2):
        mixed = decode_prompts(backend, state, boxes[[1, 0, 2]], [None] * 3, [negs[1], negs[0], negs[2]],
                               batch_size=size)
        assert (mixed.low_res_logits[1] - alone.low_res_logits[0]).abs().max() < 1e-5
        assert torch.equal(mixed.low_res_logits[1] > 0, alone.low_res_logits[0] > 0)
        assert torch.allclose(mixed.iou[1], alone.iou[0], atol=1e-6)
    # refinement stage (points only, three masks)
    pos = [np.array([30, 25]), np.array([80, 40]), np.array([60, 70])]
    rneg = [np.array([[80, 40]]), np.array([[30, 25], [60, 70]]), np.array([[30, 25]])]
    alone = decode_prompts(backend, state, None, pos[:1], rneg[:1], multimask=True)
    mixed = decode_prompts(backend, state, None, pos, rneg, multimask=True)
    assert (mixed.low_res_logits[0] - alone.low_res_logits[0]).abs().max() < 1e-5
    assert torch.equal(mixed.low_res_logits[0] > 0, alone.low_res_logits[0] > 0)
    # the hazard this avoids: padding object 0's prompt with one "not a point" token moves its logits
    padded = backend.decode(state, boxes[:1], torch.tensor([[[70.0, 30.0], [0.0, 0.0]]]), torch.tensor([[0, -1]]))
    first = decode_prompts(backend, state, boxes[:1], [None], negs[:1])
    assert (padded.low_res_logits - first.low_res_logits).abs().max() > 1e-3


@pytest.mark.parametrize("preset", ["full", "adaptive"])
def test_batched_host_work_tracks_as_object_by_object(backend, preset, monkeypatch):
    """Issue 22: Eq. 2 of all objects' candidates, their points and boxes computed at once give the tracking that
    computing them object by object gives (tests/per_object.py), on the tiny SAM (random weights: odd masks)."""
    from tests.per_object import assert_same_tracking

    scene = SyntheticScene(seed=5, num_frames=6, num_objects=5, height=96, width=128, object_size=0.6)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()
               if m.sum() >= 20]
    assert len(prompts) >= 4
    run = lambda: list(SamPDTracker(backend, SamPDConfig.preset(preset)).track(scene.iter_frames(), prompts))  # noqa
    assert_same_tracking(run, monkeypatch)
