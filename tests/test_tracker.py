"""SamPDTracker bookkeeping on an exact toy segmenter: start frames, lost / re-acquire, backward propagation,
batched decoding and decoder-call counts, laziness, bad input."""

import time

import numpy as np
import pytest
import torch

from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
from tests.toy_backend import ToyBackend, frames_of, moving_squares


def _prompts(id_maps, ids, frame=1):
    return [ObjectPrompt(object_id=i, frame_number=frame, mask=id_maps[frame] == i, label=f"obj{i}") for i in ids]


def test_full_tracker_follows_moving_objects_exactly():
    maps = moving_squares(8)
    results = list(SamPDTracker(ToyBackend(maps)).track(frames_of(maps), _prompts(maps, [1, 2])))
    assert [r.frame_number for r in results] == list(range(1, 9))
    for r in results:
        assert set(r.objects) == {1, 2}
        for oid, o in r.objects.items():
            assert np.array_equal(o.mask, maps[r.frame_number] == oid), (r.frame_number, oid)
            assert not o.lost and o.label == f"obj{oid}"
            assert o.is_prompt == (r.frame_number == 1)
    last = results[-1].objects[1]
    assert last.box.tolist() == [8 + 2 * 7, 8, 8 + 2 * 7 + 12, 20]


def test_vanilla_box_shrinks_without_refinement_but_refinement_recovers():
    """The over-tight-box failure of Sec. III-D, reproduced by the toy segmenter, and the refinement's fix."""
    maps = moving_squares(6, objects=((1, 4, 8, 3),))
    run = lambda cfg: list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, [1])))
    vanilla = run(SamPDConfig.preset("box"))
    refined = run(SamPDConfig.preset("box+refine"))
    gt_area = (maps[6] == 1).sum()
    assert vanilla[-1].objects[1].mask.sum() < gt_area
    assert refined[-1].objects[1].mask.sum() == gt_area


def test_a_negative_point_inside_the_objects_own_mask_is_still_sent():
    """Object 1's mask has spread onto object 2 (here: its prompt covers both squares). The negative point of object 2
    lies inside object 1's mask, and it is sent all the same (Sec. III-D appends the other objects' points
    unconditionally): it is what tells SAM that the covered part is not object 1."""
    maps = moving_squares(3, objects=((1, 8, 8, 1), (2, 20, 8, 1)))
    merged = (maps[1] == 1) | (maps[1] == 2)
    sent = []

    class Spy(ToyBackend):
        def _decode(self, state, boxes, points, point_labels, multimask):
            sent.append((state.frame_number, multimask, points, point_labels))
            return super()._decode(state, boxes, points, point_labels, multimask)

    prompts = [ObjectPrompt(1, 1, mask=merged), ObjectPrompt(2, 1, mask=maps[1] == 2)]
    list(SamPDTracker(Spy(maps), SamPDConfig.preset("box+refine")).track(frames_of(maps), prompts))
    _, multimask, points, labels = sent[0]  # frame 2, first stage: one box per object, [object 1, object 2]
    assert not multimask and labels[0].tolist() == [0]
    x, y = points[0, 0].long().tolist()
    assert merged[y, x] and maps[1][y, x] == 2  # object 2's point, inside object 1's mask


def test_a_box_prompt_that_finds_nothing_starts_its_object_lost_and_it_is_reacquired():
    """The box prompt of object 1 lies ahead of the square (empty there on frame 1): the object starts lost, is
    reported lost on its prompt frame, keeps being prompted with that box and is found once it moves into it."""
    maps = moving_squares(10, objects=((1, 8, 8, 3), (2, 8, 40, 0)))
    prompts = [ObjectPrompt(1, 1, box=np.array([36.0, 8.0, 48.0, 20.0]), label="a"), _prompts(maps, [2])[0]]
    results = list(SamPDTracker(ToyBackend(maps)).track(frames_of(maps), prompts))
    first = results[0].objects[1]
    assert first.lost and first.is_prompt and first.box is None and not first.mask.any() and first.label == "a"
    lost = [r.objects[1].lost for r in results]
    found = lost.index(False)
    assert 1 < found and not any(lost[found:])
    for r in results[found:]:
        assert np.array_equal(r.objects[1].mask, maps[r.frame_number] == 1), r.frame_number
        assert np.array_equal(r.objects[2].mask, maps[r.frame_number] == 2)
    # without re-acquisition it stays lost
    results = list(SamPDTracker(ToyBackend(maps), SamPDConfig(reacquire=False)).track(frames_of(maps), prompts))
    assert all(r.objects[1].lost for r in results)


def test_objects_can_start_on_different_frames():
    maps = moving_squares(6)
    prompts = [ObjectPrompt(1, 1, mask=maps[1] == 1), ObjectPrompt(2, 4, mask=maps[4] == 2)]
    results = list(SamPDTracker(ToyBackend(maps)).track(frames_of(maps), prompts))
    assert [sorted(r.objects) for r in results] == [[1]] * 3 + [[1, 2]] * 3
    assert results[3].objects[2].is_prompt and not results[4].objects[2].is_prompt
    assert np.array_equal(results[5].objects[2].mask, maps[6] == 2)


def test_lost_object_is_flagged_and_reacquired_with_its_last_good_box():
    maps = moving_squares(8, objects=((1, 10, 10, 0), (2, 50, 30, 0)))
    for f in (4, 5):  # object 2 vanishes, then comes back where it left
        maps[f] = np.where(maps[f] == 2, 0, maps[f])
    results = list(SamPDTracker(ToyBackend(maps)).track(frames_of(maps), _prompts(maps, [1, 2])))
    lost = [r.objects[2].lost for r in results]
    assert lost == [False, False, False, True, True, False, False, False]
    for r in results[3:5]:
        assert not r.objects[2].mask.any() and r.objects[2].box is None
    assert np.array_equal(results[5].objects[2].mask, maps[6] == 2)
    assert not any(r.objects[1].lost for r in results)


def test_without_reacquire_a_lost_object_stays_lost():
    maps = moving_squares(6, objects=((1, 10, 10, 0),))
    maps[3] = np.zeros_like(maps[3])
    cfg = SamPDConfig(reacquire=False)
    results = list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, [1])))
    assert [r.objects[1].lost for r in results] == [False, False, True, True, True, True]
    cfg = SamPDConfig(max_lost_frames=0)
    results = list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, [1])))
    assert [r.objects[1].lost for r in results] == [False, False, True, True, True, True]


def test_backward_propagation_from_a_key_frame():
    maps = moving_squares(7)
    order = [5, 4, 3, 2, 1]
    results = list(SamPDTracker(ToyBackend(maps)).track(frames_of(maps, order), _prompts(maps, [1, 2], frame=5)))
    assert [r.frame_number for r in results] == order
    for r in results:
        for oid in (1, 2):
            assert np.array_equal(r.objects[oid].mask, maps[r.frame_number] == oid)


@pytest.mark.parametrize("num_objects", [1, 3, 5])
def test_unlimited_batch_decodes_every_stage_in_one_call_per_point_count(num_objects):
    """Apart squares: every object has as many negative points as there are other objects, so one point count
    per stage and one call each (test_tracker_sam checks the rule with differing counts)."""
    objs = tuple((i + 1, 2 + 14 * i, 10 + 5 * (i % 2), 1) for i in range(num_objects))
    maps = moving_squares(4, size=(48, 96), objects=objs, side=10)
    cfg = SamPDConfig(decode_batch_size=0)
    results = list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, range(1, num_objects + 1))))
    assert results[0].decode_calls == 0  # prompt frame with masks: nothing to decode
    for r in results[1:]:
        assert r.decode_calls == 2
        assert r.decoded_prompts == 18 * num_objects + num_objects


def test_batch_size_splits_calls_without_changing_results():
    maps = moving_squares(4)
    prompts = _prompts(maps, [1, 2])
    unlimited = list(SamPDTracker(ToyBackend(maps), SamPDConfig(decode_batch_size=0)).track(frames_of(maps), prompts))
    batched = list(SamPDTracker(ToyBackend(maps), SamPDConfig(decode_batch_size=4)).track(frames_of(maps), prompts))
    assert batched[1].decode_calls == 9 + 1  # ceil(36 / 4) + ceil(2 / 4)
    # "auto" takes the backend's measured preference
    auto = list(SamPDTracker(ToyBackend(maps, preferred_batch_size=8)).track(frames_of(maps), prompts))
    assert auto[1].decode_calls == 5 + 1
    for a, b in zip(unlimited, batched):
        for oid in (1, 2):
            assert np.array_equal(a.objects[oid].mask, b.objects[oid].mask)


def test_box_only_prompt_gets_its_mask_from_the_backend():
    maps = moving_squares(3)
    box = np.array([8, 8, 20, 20], np.float32)
    results = list(SamPDTracker(ToyBackend(maps)).track(frames_of(maps), [ObjectPrompt(1, 1, box=box)]))
    assert results[0].decode_calls == 1
    assert np.array_equal(results[0].objects[1].mask, maps[1] == 1)
    assert np.array_equal(results[2].objects[1].mask, maps[3] == 1)


def test_point_prompt_mode_propagates_points():
    maps = moving_squares(5)
    results = list(SamPDTracker(ToyBackend(maps), SamPDConfig.preset("point")).track(frames_of(maps), _prompts(maps, [1, 2])))
    for r in results:
        assert np.array_equal(r.objects[1].mask, maps[r.frame_number] == 1)
    assert results[1].decoded_prompts == 2  # one point prompt per object, no refinement


def test_frames_are_consumed_lazily():
    maps = moving_squares(50)
    consumed = []

    def frames():
        for f, img in frames_of(maps):
            consumed.append(f)
            yield f, img

    it = SamPDTracker(ToyBackend(maps), prefetch=0).track(frames(), _prompts(maps, [1]))
    next(it)
    next(it)
    assert consumed == [1, 2]
    # with prefetch, at most `prefetch` frames are read ahead (+ one waiting for a slot in the queue)
    consumed.clear()
    it = SamPDTracker(ToyBackend(maps), prefetch=2).track(frames(), _prompts(maps, [1]))
    next(it)
    next(it)
    deadline = time.time() + 10
    while len(consumed) < 5 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert consumed == [1, 2, 3, 4, 5]
    it.close()


def test_selection_by_iou_and_template_update_run():
    maps = moving_squares(4)
    for cfg in (
        SamPDConfig.preset("full-iou"),
        SamPDConfig(selection="predicted_iou"),
        SamPDConfig(similarity="cosine"),
        SamPDConfig(template="update", similarity="cosine"),
        SamPDConfig(lost_similarity=0.2),
    ):
        results = list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, [1, 2])))
        assert np.array_equal(results[-1].objects[2].mask, maps[4] == 2)


def test_bad_prompts_are_refused_with_the_object_and_frame():
    maps = moving_squares(3)
    tracker = SamPDTracker(ToyBackend(maps))
    with pytest.raises(ValueError, match="object 1 on frame 1: prompt mask has shape"):
        list(tracker.track(frames_of(maps), [ObjectPrompt(1, 1, mask=np.ones((5, 5), bool))]))
    with pytest.raises(ValueError, match="object 2 on frame 1: the prompt mask is empty"):
        list(tracker.track(frames_of(maps), [ObjectPrompt(2, 1, mask=np.zeros((64, 80), bool))]))
    with pytest.raises(ValueError, match="more than one prompt"):
        list(tracker.track(frames_of(maps), _prompts(maps, [1]) + _prompts(maps, [1])))
    with pytest.raises(ValueError, match="never reached"):
        list(tracker.track(frames_of(maps), [ObjectPrompt(1, 9, mask=maps[1] == 1)]))
    with pytest.raises(ValueError, match="neither box nor mask"):
        list(tracker.track(frames_of(maps), [ObjectPrompt(1, 1)]))


class ShiftingCandidates(PromptableSegmenter):
    """A stub: the k-th box prompt of a call returns the 8x8 square at ``(4 + k % 6, 4 + k // 6)`` with predicted IoU
    ``k / 20``; so candidate 0 repeats the object's previous mask while SAM's score prefers the last one."""

    def _encode(self, image, frame_number):
        return ImageState(torch.zeros(1, 8, 8), (32, 32), (32, 32), 4, 1, frame_number)

    def _decode(self, state, boxes, points, point_labels, multimask):
        b = boxes.shape[0]
        logits = -torch.ones(b, 1, 32, 32)
        for k in range(b):
            x, y = 4 + k % 6, 4 + k // 6
            logits[k, 0, y : y + 8, x : x + 8] = 1
        return Decoded(low_res_logits=logits, iou=(torch.arange(b, dtype=torch.float32) / 20)[:, None])


@pytest.mark.parametrize("selection, k", [("iou_prev", 0), ("predicted_iou", 17)])
def test_iou_based_many_to_one_readings(selection, k):
    """Table III "IoU-based": the spatial reading keeps the candidate that overlaps the previous mask most, the
    predicted-IoU reading the candidate SAM scores highest."""
    prev = np.zeros((32, 32), bool)
    prev[4:12, 4:12] = True
    cfg = SamPDConfig.preset("box+mp", selection=selection)
    frames = [(f, np.zeros((32, 32, 3), np.uint8)) for f in (1, 2)]
    out = list(SamPDTracker(ShiftingCandidates(), cfg).track(frames, [ObjectPrompt(1, 1, mask=prev)]))[1].objects[1]
    x, y = 4 + k % 6, 4 + k // 6
    assert out.box.tolist() == [x, y, x + 8, y + 8]
    assert out.score == pytest.approx(1.0 if selection == "iou_prev" else 17 / 20)


def _stage_labels(cfg, num_objects=2):
    """Point labels the decoder receives in the first stage and in the refinement, over a short toy run."""
    seen = {False: set(), True: set()}

    class Spy(ToyBackend):
        def _decode(self, state, boxes, points, point_labels, multimask):
            labels = [] if point_labels is None else point_labels.reshape(-1).tolist()
            seen[multimask].update(labels)
            return super()._decode(state, boxes, points, point_labels, multimask)

    maps = moving_squares(3)
    list(SamPDTracker(Spy(maps), cfg).track(frames_of(maps), _prompts(maps, list(range(1, num_objects + 1)))))
    return seen[False], seen[True]


@pytest.mark.parametrize(
    "preset, first, refine",
    [
        # Table III: negatives in every stage a row runs (its 1x1 "Box + Mask Refine" row is Table IV's full method)
        ("point", {0, 1}, set()),
        ("point+refine", {0, 1}, {0, 1}),
        ("box", {0}, set()),
        ("box+mp", {0}, set()),
        ("box+refine", {0}, {0, 1}),
        ("full", {0}, {0, 1}),  # Table V: negatives in both stages ...
        ("full-no-neg-refine", {0}, {1}),  # ... in the multi-prompt stage only
        ("full-no-neg-mp", set(), {0, 1}),  # ... in the refinement only
    ],
)
def test_presets_send_negative_points_only_where_the_tables_put_them(preset, first, refine):
    assert _stage_labels(SamPDConfig.preset(preset)) == (first, refine)


@pytest.mark.parametrize("preset", ["box", "box+refine", "full-no-neg-mp", "full"])
def test_object_points_are_computed_only_when_read(preset, monkeypatch):
    """The objects' points (mask_points / masks_points) run per frame only when the next frame reads them (the point
    prompt or first-stage negatives); the results are the same as when they are always computed."""
    import sampd_plugin.core.tracker as tr

    maps = moving_squares(5)
    cfg = SamPDConfig.preset(preset)
    run = lambda: list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, [1, 2])))
    calls = []
    for name in ("mask_points", "masks_points"):  # (one object's points, or all objects' at once)
        monkeypatch.setattr(tr, name, lambda *a, real=getattr(tr, name), **k: calls.append(1) or real(*a, **k))
    lazy = run()
    lazy_calls = len(calls)
    monkeypatch.setattr(tr, "_uses_track_points", lambda c: True)
    calls.clear()
    eager = run()
    for a, b in zip(lazy, eager):
        for oid in a.objects:
            assert np.array_equal(a.objects[oid].mask, b.objects[oid].mask)
            assert a.objects[oid].score == b.objects[oid].score
    uses = cfg.prompt_type == "point" or (cfg.negative_points > 0 and cfg.negatives_in_first_stage)
    assert (lazy_calls == len(calls)) == uses and lazy_calls <= len(calls)
