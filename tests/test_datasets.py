"""The official dataset layouts without FiftyOne: label-map PNGs, the overlap rule, and the DAVIS 2017 / YouTube-VOS
2018 / UVO readers on miniature trees written by sampd_plugin.synthetic.trees (checked against the scenes' exact
ground truth)."""

import json
import os
import shutil

import numpy as np
import pytest

from sampd_plugin.datasets import davis, labelmaps, uvo, youtube_vos
from sampd_plugin.synthetic import SyntheticScene
from sampd_plugin.synthetic.trees import sequence_scene, write_davis, write_uvo, write_youtube_vos


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees")
    return dict(davis=write_davis(str(root / "davis"), num_sequences=2, num_frames=5),
                ytvos=write_youtube_vos(str(root / "ytvos"), num_videos=2, num_frames=12),
                uvo=write_uvo(str(root / "uvo"), num_videos=1, num_frames=4))


def _copy(tree, tmp_path):
    dst = str(tmp_path / "copy")
    shutil.copytree(tree, dst)
    return dst


# --- label maps ----------------------------------------------------------------------------------------------------
def test_label_map_png_is_indexed_with_the_davis_palette(tmp_path):
    from PIL import Image

    lm = np.array([[0, 1, 2], [3, 255, 1]], dtype=np.uint8)
    path = labelmaps.write_label_map(str(tmp_path / "a" / "00000.png"), lm)
    with Image.open(path) as im:
        assert im.mode == "P"
        pal = np.array(im.getpalette()[:9]).reshape(3, 3)
    assert pal.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]  # the PASCAL colours of DAVIS annotations
    assert np.array_equal(np.array(Image.open(path)), lm)  # what the DAVIS toolkit reads: the indices
    assert np.array_equal(labelmaps.read_label_map(path), lm)


def test_rgb_png_is_not_a_label_map(tmp_path):
    from PIL import Image

    path = str(tmp_path / "rgb.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match="mode 'RGB'"):
        labelmaps.read_label_map(path)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        labelmaps.read_label_map(str(tmp_path / "nope.png"))


def test_overlap_rule_higher_score_then_larger_id():
    a = np.zeros((4, 4), bool)
    a[:, :3] = True
    b = np.zeros((4, 4), bool)
    b[:, 1:] = True
    c = np.zeros((4, 4), bool)
    c[0, :] = True
    out = labelmaps.resolve_overlaps({1: a, 2: b, 3: c}, {1: 0.9, 2: 0.5, 3: 0.7})
    # 1 beats 3 beats 2 where they overlap; each output is a subset of its input, all disjoint
    assert out[1].tolist() == a.tolist()
    assert out[3].tolist() == (c & ~a).tolist()
    assert out[2].tolist() == (b & ~a & ~c).tolist()
    assert not (out[1] & out[2]).any() and not (out[1] & out[3]).any() and not (out[2] & out[3]).any()
    # no scores: the larger id wins; a missing score ranks below any score
    assert labelmaps.resolve_overlaps({1: a, 2: b})[2].tolist() == b.tolist()
    assert labelmaps.resolve_overlaps({1: a, 2: b}, {1: 0.1})[1].tolist() == a.tolist()
    lm = labelmaps.masks_to_label_map({1: a, 2: b}, (4, 4), {1: 0.1, 2: 0.2})
    assert lm[0].tolist() == [1, 2, 2, 2]


# --- DAVIS ---------------------------------------------------------------------------------------------------------
def test_davis_reader_matches_the_scenes(trees):
    seqs = davis.read_davis(trees["davis"], "val")
    assert [s.name for s in seqs] == ["synthetic-0", "synthetic-1"]
    for i, seq in enumerate(seqs):
        scene = sequence_scene(seq)
        assert scene.params == SyntheticScene(i, 5, 2, 64, 96).params
        assert [f.stem for f in seq.frames] == ["00000", "00001", "00002", "00003", "00004"]
        assert [f.number for f in seq.frames] == [1, 2, 3, 4, 5]
        assert sorted(seq.objects) == [1, 2]
        for oid, stem, mask in seq.prompt_masks():
            assert stem == "00000" and np.array_equal(mask, scene.visible_masks(1)[oid])
        lm = seq.label_map("00003")
        ids = scene.render_ids(4)
        assert np.array_equal(np.where(lm == labelmaps.VOID, 0, lm), ids)
        assert (lm == labelmaps.VOID).any()  # the void ring around the objects
        assert davis.davis_scored_stems(seq) == ["00001", "00002", "00003"]


def test_davis_reader_names_what_is_missing(trees, tmp_path):
    root = _copy(trees["davis"], tmp_path)
    with pytest.raises(FileNotFoundError, match="ImageSets/2017/train.txt"):
        davis.read_davis(root, "train")
    with pytest.raises(ValueError, match="not in"):
        davis.read_davis(root, "val", sequences=["bear"])
    os.remove(os.path.join(root, "Annotations", "480p", "synthetic-1", "00000.png"))
    with pytest.raises(FileNotFoundError, match="synthetic-1/00000.png"):
        davis.read_davis(root, "val")
    shutil.rmtree(os.path.join(root, "JPEGImages", "480p", "synthetic-0"))
    with pytest.raises(FileNotFoundError, match="JPEGImages/480p/synthetic-0"):
        davis.read_davis(root, "val")


# --- YouTube-VOS ---------------------------------------------------------------------------------------------------
def test_youtube_vos_reader(trees):
    root = trees["ytvos"]
    seqs = youtube_vos.read_youtube_vos(root, "valid")
    seq = seqs[0]
    assert len(seq.frames) == 12  # valid_all_frames: every frame is tracked
    assert seq.output_stems == ["00000", "00005", "00010"]  # the listed (annotated) frames
    assert seq.number("00005") == 6
    assert seq.objects[3].first_stem == "00010" and seq.objects[1].first_stem == "00000"  # the late object
    assert not seq.has_full_annotations
    assert youtube_vos.scored_stems(seq, 1) == ["00005", "00010"]
    assert youtube_vos.scored_stems(seq, 3) == []
    scene = sequence_scene(seq)
    for oid, stem, mask in seq.prompt_masks():
        assert np.array_equal(mask, scene.render_ids(seq.number(stem)) == oid)
    with open(os.path.join(root, "valid", "meta.json")) as f:
        meta = json.load(f)["videos"][seq.name]["objects"]
    assert {int(k): o["category"] for k, o in meta.items()} == {k: o.category for k, o in seq.objects.items()}
    sparse = youtube_vos.read_youtube_vos(root, "valid", all_frames=False)[0]
    assert [f.stem for f in sparse.frames] == ["00000", "00005", "00010"]
    train = youtube_vos.read_youtube_vos(root, "train")[0]
    assert train.has_full_annotations
    seen = youtube_vos.seen_categories(root)
    assert seen == {o.category for o in train.objects.values()}


def test_youtube_vos_reader_names_what_is_missing(trees, tmp_path):
    root = _copy(trees["ytvos"], tmp_path)
    shutil.rmtree(os.path.join(root, "valid_all_frames"))
    with pytest.raises(FileNotFoundError, match="valid_all_frames"):
        youtube_vos.read_youtube_vos(root, "valid", all_frames=True)
    name = youtube_vos.read_youtube_vos(root, "valid")[0].name
    os.remove(os.path.join(root, "valid", "Annotations", name, "00010.png"))
    with pytest.raises(ValueError, match=r"objects \[3\].*no annotation"):
        youtube_vos.read_youtube_vos(root, "valid")
    os.remove(os.path.join(root, "valid", "meta.json"))
    with pytest.raises(FileNotFoundError, match="valid/meta.json"):
        youtube_vos.read_youtube_vos(root, "valid")


# --- UVO -----------------------------------------------------------------------------------------------------------
def test_uvo_reader_decodes_the_tracks(trees, tmp_path):
    seq = uvo.read_uvo(trees["uvo"], "val")[0]
    scene = sequence_scene(seq)
    assert seq.video_id == 1 and [f.stem for f in seq.frames] == ["0", "1", "2", "3"]
    assert len(seq.tracks) == 3
    for k, (tid, segs) in enumerate(sorted(seq.tracks.items())):
        for t, rle in enumerate(segs, start=1):
            expected = scene.render_ids(t) == k + 1
            got = uvo.decode_rle(rle)
            assert (got is None and not expected.any()) or np.array_equal(got, expected)
    root = _copy(trees["uvo"], tmp_path)
    os.remove(os.path.join(root, uvo.FRAMES_DIR, seq.name, "2.png"))
    with pytest.raises(FileNotFoundError, match=f"{seq.name}/2.png"):
        uvo.read_uvo(root, "val")
    with pytest.raises(FileNotFoundError, match="UVO_video_test_dense.json"):
        uvo.read_uvo(root, "test")


def test_uncompressed_rle_decodes():
    m = np.zeros((5, 4), bool)
    m[1:3, 1:3] = True
    # column-major run lengths: 6 background, 2 fg, 3 bg, 2 fg, 7 bg
    rle = {"size": [5, 4], "counts": [6, 2, 3, 2, 7]}
    assert np.array_equal(uvo.decode_rle(rle), m)
    assert np.array_equal(uvo.decode_rle(uvo.encode_rle(m)), m)
