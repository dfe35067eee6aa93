"""Overlap-aware tracking (sampd_plugin.core.overlap, preset "overlap"; our extension): joint selection, exclusivity and
occlusion on small constructed cases (two objects crossing, one occluding the other, identical-looking objects), the
extension on generated crossing videos, and the paper presets untouched by it."""

import hashlib

import numpy as np
import pytest
import torch

from sampd_plugin.core.config import EXTENSION_PRESETS, PRESETS, SamPDConfig
from sampd_plugin.core.overlap import (
    continuity,
    exclusive_masks,
    extrapolate_box,
    inside_fraction,
    is_occluded,
    joint_selection,
)

S = 16  # mask grid side


def _box(y0, y1, x0, x1):
    m = torch.zeros((S, S), dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


A, B = _box(4, 10, 1, 7), _box(4, 10, 7, 13)  # two squares side by side, touching where they cross


def test_inside_fraction_and_continuity():
    cands = torch.stack([A, B, A | B, torch.zeros_like(A)])
    assert inside_fraction(cands, A).tolist() == [1.0, 0.0, 0.5, 0.0]
    assert continuity(cands[None], A[None])[0].tolist() == [1.0, 0.0, 0.5, 0.0]


def test_crossing_objects_keep_their_own_candidates():
    """Object 2's box has slid onto object 1 (its candidate 0 is object 1, the paper's argmax: an identity switch).
    Object 1 continues its previous mask, so it chooses first; object 2's candidate on it then loses its score."""
    scores = torch.tensor([[0.9, 0.7], [1.0, 0.8]])  # object 2 prefers A (similar-looking objects)
    cands = torch.stack([torch.stack([A, A | B]), torch.stack([A, B])])
    previous = torch.stack([A, B])
    assert scores.argmax(1).tolist() == [0, 0]  # independently, both take A
    idx, covered = joint_selection(scores, cands, previous)
    assert idx.tolist() == [0, 1] and covered.tolist() == [0.0, 0.0]
    # with nothing else around, the joint pick is the paper's argmax
    idx, covered = joint_selection(scores[1:], cands[1:], previous[1:])
    assert idx.tolist() == [0] and covered.tolist() == [0.0]


def test_an_object_whose_candidates_all_lie_on_another_is_covered():
    """Object 2 is hidden behind object 1: every candidate of it is object 1; it is reported covered (occluded)."""
    scores = torch.tensor([[1.0], [1.0]])
    cands = torch.stack([torch.stack([A]), torch.stack([A])])
    idx, covered = joint_selection(scores, cands, torch.stack([A, B]))
    assert covered.tolist() == [0.0, 1.0]
    assert is_occluded(float(covered[1]), area=0.0, usual_area=36.0, box_covered=0.0)


def test_exclusivity_gives_contested_cells_to_the_higher_logit_then_to_the_holder():
    merged = torch.stack([torch.where(A | B, 5.0, -5.0), torch.where(B, 5.0, -5.0)])  # object 1 leaked onto object 2
    out = exclusive_masks(merged, torch.stack([A, B]))
    assert torch.equal(out[0], A) and torch.equal(out[1], B)
    assert not (out[0] & out[1]).any()
    # SAM's logits decide where they differ by more than the hold bonus
    sure = torch.stack([torch.where(A | B, 9.0, -5.0), torch.where(B, 5.0, -5.0)])
    out = exclusive_masks(sure, torch.stack([A, B]))
    assert torch.equal(out[0], A | B) and not out[1].any()
    # cells claimed by one object only are never touched
    assert torch.equal(exclusive_masks(merged[:1], A[None])[0], A | B)


def test_identical_looking_objects_with_identical_masks_are_split_by_their_previous_masks():
    same = torch.where(A | B, 5.0, -5.0)
    out = exclusive_masks(torch.stack([same, same]), torch.stack([A, B]))
    assert torch.equal(out[0], A) and torch.equal(out[1], B)
    # no history: the whole mask goes to one of them (the first), the other is left with nothing
    out = exclusive_masks(torch.stack([same, same]), torch.zeros((2, S, S), dtype=torch.bool))
    assert torch.equal(out[0], A | B) and not out[1].any()


def test_occlusion_rule_and_box_extrapolation():
    assert not is_occluded(0.2, area=30.0, usual_area=36.0, box_covered=0.9)  # big enough
    assert not is_occluded(0.2, area=5.0, usual_area=36.0, box_covered=0.1)  # small, but nobody covers its box
    assert is_occluded(0.2, area=5.0, usual_area=36.0, box_covered=0.9)
    box = np.array([10.0, 10.0, 20.0, 30.0])
    assert extrapolate_box(box, np.array([2.0, -1.0]), 3, (100, 100)).tolist() == [16, 7, 26, 27]
    assert extrapolate_box(box, np.array([-5.0, 0.0]), 4, (100, 100)).tolist() == [0, 10, 10, 30]  # kept inside


# --- the tracker ------------------------------------------------------------------------------------------------------
def _run(config, seed=0, num_frames=40, scenario="crossing", height=240, width=320):
    from sampd_plugin.backends.synthetic import SyntheticSegmenter
    from sampd_plugin.benchmark import score_sequence
    from sampd_plugin.synthetic import SyntheticScene
    from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker

    scene = SyntheticScene(seed=seed, num_frames=num_frames, num_objects=3, height=height, width=width,
                           scenario=scenario)
    frames = list(scene.iter_frames())
    gt = {f: scene.visible_masks(f) for f, _ in frames}
    prompts = [ObjectPrompt(i, 1, mask=m) for i, m in gt[1].items()]
    results = list(SamPDTracker(SyntheticSegmenter(scene), config).track(frames, prompts))
    return results, score_sequence(results, gt.__getitem__, num_frames)


@pytest.fixture(scope="module")
def crossing_runs():
    return {name: _run(SamPDConfig.preset(name)) for name in ("full", "overlap")}


def test_overlap_preset_keeps_identities_where_full_switches(crossing_runs):
    """A generated video where two look-alike objects cross and a third brushes past (synthetic segmenter)."""
    (_, full), (results, overlap) = crossing_runs["full"], crossing_runs["overlap"]
    assert full.switches > 10 and overlap.switches <= full.switches / 2
    jf = lambda s: np.mean([(j.mean + f.mean) / 2 for j, f in zip(s.j, s.f)])  # noqa: E731
    assert jf(overlap) > jf(full) + 0.05
    assert any(o.occluded for r in results for o in r.objects.values())  # the occlusion state was used
    for r in results:  # the output masks never overlap
        masks = np.stack([o.mask for o in r.objects.values()])
        assert masks.sum(0).max() <= 1 or (masks.sum(0) > 1).sum() < 0.01 * masks.any(0).sum()


def test_confusions_flag_the_frames_where_identities_switch(crossing_runs):
    """The tracker's own evidence (no ground truth) marks the frames the benchmark counts as switches."""
    results, _ = crossing_runs["full"]
    flagged = sum(o.confusion is not None for r in results for o in r.objects.values())
    assert flagged > 0
    assert all(o.confusion in (None, "switch", "merge") for r in results for o in r.objects.values())


def test_interaction_benchmark_prints_full_and_overlap_side_by_side(capsys):
    """``python -m sampd_plugin.benchmark --scenario crossing --presets full overlap --per-video``: J&F and identity
    switches of both rows, per video and over all videos (a miniature run)."""
    from sampd_plugin.benchmark import main

    main(["--scenario", "crossing", "--presets", "full", "overlap", "--per-video", "--videos", "2", "--frames", "10",
          "--height", "96", "--width", "128"])
    lines = capsys.readouterr().out.splitlines()
    assert "crossing scenario" in lines[0] and lines[1].split()[6:8] == ["ID", "sw"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:4]}
    assert set(rows) == {"full", "overlap"}
    videos = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in lines if ln.split()[:1] in (["0"], ["1"],
                                                                                                   ["all"])}
    assert set(videos) == {"0", "1", "all"} and all(len(v) == 4 for v in videos.values())  # J&F, switches x 2 rows
    for k, row in enumerate(("full", "overlap")):
        assert videos["all"][2 * k] == pytest.approx(float(rows[row][1]))  # the table's mean J&F ...
        assert videos["all"][2 * k + 1] == float(rows[row][6]) == videos["0"][2 * k + 1] + videos["1"][2 * k + 1]


PAPER = [name for name in PRESETS if name not in EXTENSION_PRESETS]


def test_paper_presets_never_reach_the_extension(monkeypatch):
    """Every paper preset runs without calling any overlap-aware function, and with them disabled its output is
    the same (masks, scores, IoUs, lost flags)."""
    import sampd_plugin.core.tracker as tr

    def _hash(results):
        h = hashlib.sha256()
        for r in results:
            for oid, o in sorted(r.objects.items()):
                h.update(np.packbits(o.mask).tobytes() + repr((oid, o.score, o.iou, o.lost)).encode())
        return h.hexdigest()

    small = dict(num_frames=8, height=96, width=128)
    before = {name: _hash(_run(SamPDConfig.preset(name), **small)[0]) for name in PAPER}

    def refuse(*args, **kwargs):
        raise AssertionError("a paper preset reached the overlap-aware extension")

    for name in ("joint_selection", "exclusive_masks", "is_occluded", "Motion"):
        monkeypatch.setattr(tr, name, refuse)
    for name in PAPER:
        assert _hash(_run(SamPDConfig.preset(name), **small)[0]) == before[name], name
    with pytest.raises(AssertionError, match="overlap-aware"):
        _run(SamPDConfig.preset("overlap"), **small)


def test_full_on_a_standard_video_is_what_it_was_before_the_extension():
    """Golden output of ``full`` on a standard generated video, recorded at the commit before overlap-aware tracking
    existed (229af87): the extension changed nothing in the paper's method."""
    results, _ = _run(SamPDConfig.preset("full"), seed=2, num_frames=10, scenario="standard", height=96, width=128)
    h = hashlib.sha256()
    for r in results:
        for oid, o in sorted(r.objects.items()):
            h.update(np.packbits(o.mask).tobytes())
    assert h.hexdigest() == GOLDEN_FULL


GOLDEN_FULL = "812f4208f7b95ee4ae79cfc52867c7c3537edcfb0a698a3d6208bcaeea264d50"
