"""The paper-table CLI (``python -m sampd_plugin.benchmark``) on miniature DAVIS / YouTube-VOS / UVO trees written in
the official layouts: it tracks, writes what the official tools read, and its scores are those of the written files
(re-scored here independently, the way the DAVIS toolkit / the VIS API read them). Synthetic numbers: never compared
to the paper."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from sampd_plugin.benchmark.cli import main
from sampd_plugin.core import metrics
from sampd_plugin.datasets.davis import read_davis
from sampd_plugin.synthetic.trees import write_davis, write_uvo, write_youtube_vos

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return dict(davis=write_davis(str(root / "davis"), num_sequences=2, num_frames=5),
                small=write_davis(str(root / "small"), num_sequences=1, num_frames=3, height=48, width=64,
                                           seed=4),
                ytvos=write_youtube_vos(str(root / "ytvos"), num_videos=2, num_frames=12),
                uvo=write_uvo(str(root / "uvo"), num_videos=1, num_frames=4))


def run_cli(*args):
    return main([*args, "--quiet"])


def toolkit_jf(davis_root, results_dir, split="val"):
    """J&F the way davis2017-evaluation's semi-supervised task computes it, re-implemented independently: the
    annotation PNGs of each sequence (void -> background), objects 1..max id of the first one, the first and last
    frames dropped, result PNGs read as indices and split by object id; our exact J and F."""
    with open(os.path.join(davis_root, "ImageSets", "2017", f"{split}.txt")) as f:
        seqs = [s.strip() for s in f if s.strip()]
    j_means, f_means = [], []
    for seq in seqs:
        ann_dir = os.path.join(davis_root, "Annotations", "480p", seq)
        ids = sorted(os.path.splitext(n)[0] for n in os.listdir(ann_dir))
        gts = [np.array(Image.open(os.path.join(ann_dir, i + ".png"))) for i in ids]
        gts = [np.where(g == 255, 0, g) for g in gts]
        n = int(gts[0].max())
        preds = [np.array(Image.open(os.path.join(results_dir, seq, i + ".png"))) for i in ids[1:-1]]
        for k in range(1, n + 1):
            js = [metrics.region_similarity(p == k, g == k) for p, g in zip(preds, gts[1:-1])]
            fs = [metrics.boundary_f_measure(p == k, g == k) for p, g in zip(preds, gts[1:-1])]
            j_means.append(metrics.statistics(js).mean)
            f_means.append(metrics.statistics(fs).mean)
    return (np.mean(j_means) + np.mean(f_means)) / 2, np.mean(j_means), np.mean(f_means)


def test_davis_row_equals_the_toolkit_on_the_written_pngs(trees, tmp_path):
    res = run_cli("davis", "--root", trees["davis"], "--out", str(tmp_path))
    row = res["tables"]["main"]["full"]
    assert res["synthetic"] and res["model"] == "synthetic" and "SYNTHETIC" in res["report"]
    results_dir = row["out_dir"]
    for seq in ("synthetic-0", "synthetic-1"):  # one indexed PNG per frame, named as the annotations
        names = sorted(os.listdir(os.path.join(results_dir, seq)))
        assert names == [f"{i:05d}.png" for i in range(5)]
        assert Image.open(os.path.join(results_dir, seq, names[0])).mode == "P"
    jf, j, f = toolkit_jf(trees["davis"], results_dir)
    assert row["J&F-Mean"] == pytest.approx(jf, abs=1e-6)
    assert row["J-Mean"] == pytest.approx(j, abs=1e-6) and row["F-Mean"] == pytest.approx(f, abs=1e-6)
    assert 0.3 < row["J-Mean"] <= 1.0  # the synthetic segmenter tracks these objects
    with open(res["path"]) as fh:
        saved = json.load(fh)
    assert saved["tables"]["main"]["full"]["J&F-Mean"] == pytest.approx(row["J&F-Mean"])
    assert saved["synthetic"] is True


def test_youtube_vos_submission_has_the_server_layout(trees, tmp_path):
    res = run_cli("ytvos", "--root", trees["ytvos"], "--out", str(tmp_path))
    row = res["tables"]["main"]["full"]
    assert row["config"]["multimask_pick"] == "max_iou_prev"  # the paper's YouTube-VOS setting
    with open(os.path.join(trees["ytvos"], "valid", "meta.json")) as f:
        meta = json.load(f)["videos"]
    expected = {f"Annotations/{v}/{s}.png" for v, m in meta.items() for o in m["objects"].values()
                for s in o["frames"]}
    with zipfile.ZipFile(row["submission"]) as z:
        assert set(z.namelist()) == expected  # listed frames only, Annotations/ at the top
        for name in z.namelist():
            with z.open(name) as fh:
                im = Image.open(fh)
                assert im.mode == "P"
                ids = set(np.unique(np.array(im)).tolist()) - {0}
            video, stem = name.split("/")[1], name.split("/")[2][:-4]
            started = {int(k) for k, o in meta[video]["objects"].items() if o["frames"][0] <= stem}
            assert ids <= started  # object ids as in meta.json, only once they have started
    parts = [row[k] for k in ("J_seen", "F_seen", "J_unseen", "F_unseen")]
    assert all(np.isfinite(parts)) and row["G"] == pytest.approx(np.mean(parts))


def test_uvo_row_scores_the_written_results(trees, tmp_path):
    from sampd_plugin.core.vis_metrics import evaluate_vis

    res = run_cli("uvo", "--root", trees["uvo"], "--out", str(tmp_path))
    row = res["tables"]["main"]["full"]
    with open(row["results"]) as f:
        preds = json.load(f)
    with open(os.path.join(trees["uvo"], "VideoDenseSet", "UVO_video_val_dense.json")) as f:
        gt = json.load(f)
    assert preds and all(len(p["segmentations"]) == 4 and 0 <= p["score"] <= 1 for p in preds)
    again = evaluate_vis(gt["annotations"], preds, use_categories=False)
    assert row["AR100"] == pytest.approx(again["AR100"]) and row["AP"] == pytest.approx(again["AP"])
    assert row["AR100"] > 0.5  # the synthetic automatic masks include every object


def test_table_flags(trees, tmp_path):
    res = run_cli("davis", "--root", trees["small"], "--out", str(tmp_path), "--ablation", "--negatives",
                  "--timing", "--oracle", "--max-frames", "1")
    t = res["tables"]
    assert list(t["ablation"]) == ["point", "point+refine", "box", "box+mp", "box+refine", "full", "full-iou"]
    assert len(t["negatives"]) == 3
    flags = {(r["config"]["negatives_in_first_stage"], r["config"]["negatives_in_refinement"])
             for r in t["negatives"].values()}
    assert flags == {(True, False), (False, True), (True, True)}
    assert [r["prompts"] for r in t["timing"].values()] == [1, 9, 18, 50]
    assert all(r["encoder_ms"] > 0 and r["sampd_ms"] > 0 for r in t["timing"].values())
    oracle = t["oracle"]
    grid = np.array(oracle["vanilla"]["J&F"])
    assert grid.shape == (3, 7, 7) and np.array(oracle["multi-prompt"]["J&F"]).shape == (3, 7, 7)
    # the exact ground-truth box is denoised better than one shifted by 18 % in x and y
    assert grid[1, 3, 3] > grid[1, 0, 0]
    for table in ("Table III", "Table V", "Table IV", "Oracle experiment"):
        assert table in res["report"]


def test_adaptive_flag_compares_decoder_passes(trees, tmp_path, capsys):
    res = run_cli("davis", "--root", trees["davis"], "--out", str(tmp_path), "--adaptive")
    off, on = res["tables"]["adaptive"].values()
    assert (off["config"]["adaptive"], on["config"]["adaptive"]) == (False, True)
    main_row = res["tables"]["main"]["full"]
    # without adaptive: 18 boxes + 1 refinement point per object and propagated frame, as the main row
    assert off["decoded_prompts"] == main_row["decoded_prompts"] == 19 * sum(
        len(s.objects) * (len(s.frames) - 1) for s in read_davis(trees["davis"]))
    assert off["pass_ratio"] == 1 and 0 < on["pass_ratio"] == on["decoded_prompts"] / off["decoded_prompts"] < 1
    assert "decoder passes" in res["report"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # a user error: one line, exit status 2
        run_cli("davis", "--root", trees["small"], "--out", str(tmp_path), "--preset", "box", "--adaptive")
    assert exit_.value.code == 2 and "adaptive=True needs" in capsys.readouterr().err


def test_custom_segmenter_through_the_cli(trees, tmp_path):
    from sampd_plugin.benchmark.vos import frame_label_map, sequence_prompts
    from sampd_plugin.core.config import SamPDConfig
    from sampd_plugin.core.tracker import SamPDTracker
    from .test_byo_segmenter import BoxContrastSegmenter

    module = BoxContrastSegmenter.__module__  # e.g. tests.test_byo_segmenter, as pytest imported it
    res = run_cli("davis", "--root", trees["small"], "--out", str(tmp_path),
                  "--model", f"{module}:BoxContrastSegmenter", "--model-kwargs", '{"threshold": 30}')
    assert res["model"] == f"custom:{module}.BoxContrastSegmenter"
    out = res["tables"]["main"]["full"]["out_dir"]
    seq = read_davis(trees["small"])[0]
    tracker = SamPDTracker(BoxContrastSegmenter(threshold=30), SamPDConfig())
    for r in tracker.track(seq.iter_images(), sequence_prompts(seq)):
        stem = f"{r.frame_number - 1:05d}"
        written = np.array(Image.open(os.path.join(out, seq.name, stem + ".png")))
        assert np.array_equal(written, frame_label_map(r, seq.image_size()))


def cli_error(capsys, *args) -> str:
    """Runs the CLI expecting a user error: exit status 2 and ONE line on stderr (no traceback); returns it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(*args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_errors_name_the_problem(trees, tmp_path, capsys):
    assert "nowhere" in cli_error(capsys, "davis", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    plain = str(tmp_path / "plain")
    os.makedirs(plain)
    for sub in ("JPEGImages", "Annotations", "ImageSets"):
        os.symlink(os.path.join(trees["small"], sub), os.path.join(plain, sub))
    out = str(tmp_path / "out")
    assert re.search("sequence synthetic-.*only segments sequences made by",
                     cli_error(capsys, "davis", "--root", plain, "--out", out, "--model", "synthetic"))
    assert "has no 'Nope'" in cli_error(capsys, "davis", "--root", plain, "--out", out, "--model",
                                        "sampd_plugin.backends.base:Nope")
    assert "no_such_module" in cli_error(capsys, "davis", "--root", plain, "--out", out, "--model",
                                         "no_such_module:Seg")
    # --debug: the traceback (the original exception) instead of the line
    with pytest.raises(ImportError, match="no_such_module"):
        run_cli("davis", "--root", plain, "--out", out, "--model", "no_such_module:Seg", "--debug")


@pytest.mark.parametrize("args, named", [
    (["--root", "{tmp}/nowhere"], "--root {tmp}/nowhere: no such folder"),
    (["--root", "{davis}", "--preset", "nope"], "--preset 'nope': unknown preset"),
    (["--root", "{davis}", "--device", "banana"], "unknown --device 'banana'"),
    (["--root", "{davis}", "--device", "cuda:3"], "'cuda:3'"),
    (["--root", "{davis}", "--model-kwargs", "{{bad"], "--model-kwargs '{{bad': not valid JSON"),
    (["--root", "{davis}", "--out", "{tmp}/a-file"], "--out {tmp}/a-file: is a file, not a folder"),
    (["--root", "{davis}", "--sequences", "no-such-sequence"], "['no-such-sequence'] are not in"),
    (["--root", "{davis}", "--model", "vit_b", "--checkpoint", "{tmp}/sam.pth"], "--checkpoint {tmp}/sam.pth: no such"),
    (["--root", "{davis}", "--max-sequences", "0"], "--max-sequences must be >= 1"),
])
def test_every_user_error_is_one_line_naming_the_argument_exit_2(trees, tmp_path, capsys, args, named):
    import torch

    if "cuda:3" in args and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    (tmp_path / "a-file").write_text("not a folder")
    fmt = dict(tmp=str(tmp_path), davis=trees["small"])
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    err = cli_error(capsys, "davis", *[a.format(**fmt) for a in args], *out)
    assert named.format(**fmt) in err, err
    assert not os.path.exists(tmp_path / "out")  # nothing written


def test_corrupt_uvo_ground_truth_is_refused_not_scored(trees, tmp_path, capsys):
    """A bad RLE (short counts: pycocotools would decode it from uninitialised memory) or an RLE of another size
    than the video used to be scored (exit 0): now the CLI stops before tracking, naming the file, the annotation
    and the frame."""
    from sampd_plugin.datasets.uvo import annotation_file

    for spoil, named in ((lambda seg: dict(seg, counts=seg["counts"][:3]), "run lengths cover"),
                         (lambda seg: dict(seg, size=[seg["size"][0] * 2, seg["size"][1]]), "the RLE's size is")):
        root = str(tmp_path / f"uvo-{named[:3]}")
        shutil.copytree(trees["uvo"], root)
        path = annotation_file(root, "val")
        with open(path) as f:
            data = json.load(f)
        segs = data["annotations"][0]["segmentations"]
        t = next(i for i, seg in enumerate(segs) if seg)
        segs[t] = spoil(segs[t])
        with open(path, "w") as f:
            json.dump(data, f)
        err = cli_error(capsys, "uvo", "--root", root, "--out", str(tmp_path / "out"))
        assert named in err and path in err and f"annotation {data['annotations'][0]['id']}" in err, err
        assert not os.path.exists(tmp_path / "out" / "results.json")


def test_a_user_error_in_a_subprocess_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, "-m", "sampd_plugin.benchmark", "davis", "--root", str(tmp_path / "nowhere")]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"python -m sampd_plugin.benchmark: error: --root {tmp_path / 'nowhere'}: no such folder (--debug shows the "
        "traceback)"], proc.stderr
    proc = subprocess.run(args + ["--debug"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "CliError" in proc.stderr


def test_module_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "sampd_plugin.benchmark", "synthetic", "--videos", "1", "--frames",
                           "3", "--objects", "2", "--height", "48", "--width", "64", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Table I (DAVIS 2017)" in proc.stdout and "SYNTHETIC" in proc.stdout
    assert "[1/1] synthetic-0" in proc.stderr  # progress lines
    assert os.path.isfile(os.path.join(tmp_path, "results.json"))
