"""``python -m sampd_plugin.benchmark {davis,ytvos,uvo,synthetic} --root PATH --model vit_h --checkpoint PATH``:
the paper's tables on the real dataset trees (FiftyOne-free: it reads the trees directly).

What it computes (paper Sec. IV; supplement):

- always, the Table I / II row of ``--preset`` (default ``full``): DAVIS 2017 J&F, J, F; YouTube-VOS 2018 G, J_s,
  F_s, J_u, F_u; UVO 1.0 AR100 (ARs, ARm, ARl) and AP;
- ``--ablation``: Table III (point, point+refine, box, box+mp, box+refine, full, full-iou);
- ``--negatives``: Table V (negative points in the multi-prompt stage only, in the refinement only, in both);
- ``--timing``: Table IV (encoder ms and SAM-PD ms per frame, J&F, for grids 1x1x1, 3x3x1, 3x3x2, 5x5x2);
- ``--oracle``: the supplement's oracle experiment (Fig. 7 / Table VI: perturbed ground-truth boxes, vanilla vs
  multi-prompt, no tracking);
- ``--adaptive`` (our extension, not a paper table): ``--preset`` with and without adaptive denoising
  (``SamPDConfig.adaptive``): scores, decoder passes (prompts decoded) and their ratio.

Every row writes its predictions under ``--out`` (DAVIS: ``<row>/<sequence>/<stem>.png``, the official toolkit's
results folder; YouTube-VOS: ``<row>/Annotations`` + ``<row>/submission.zip`` for the server; UVO:
``<row>/results.json``) and all numbers go to ``<out>/results.json``. YouTube-VOS rows use the paper's setting for
that dataset (refinement keeps the multimask output with the highest IoU with the previous mask, Sec. III-D) unless
``--multimask-pick`` says otherwise.

``synthetic`` writes a miniature DAVIS tree of generated videos under ``<out>/tree`` and runs the DAVIS protocol on
it with the synthetic segmenter. Trees written by :mod:`sampd_plugin.synthetic.trees` (a ``sampd_synthetic.json``
sidecar) default to ``--model synthetic``. Numbers from the synthetic segmenter, the ``tiny`` model or generated
trees are labelled SYNTHETIC: they check the pipeline and are NOT the paper's results.

Models: ``vit_h`` / ``vit_l`` / ``vit_b`` (SAM; ``--checkpoint`` or the usual look-up), ``tiny``, ``synthetic``, or
your own segmenter as ``package.module:Name`` (a :class:`~sampd_plugin.backends.base.PromptableSegmenter` instance,
class or factory; ``--model-kwargs '{"...": ...}'`` are passed to it).

Without a dataset (no arguments, or only ``--presets`` / ``--realism`` / ``--videos`` ... options) it runs the
in-memory synthetic ablation as it always has (:func:`sampd_plugin.benchmark.main`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional

from sampd_plugin.backends.checkpoints import CheckpointLoadError
from sampd_plugin.backends.registry import BackendCache, load_segmenter
from sampd_plugin.core import checks
from sampd_plugin.core.config import PRESETS, SamPDConfig
from sampd_plugin.synthetic.scene import SCENE_FIELD

DATASETS = ("davis", "ytvos", "uvo", "synthetic")
DEFAULT_SPLITS = {"davis": "val", "ytvos": "valid", "uvo": "val", "synthetic": "val"}
#: Table III rows (paper order) and the IoU-selection row
ABLATION_ROWS = ("point", "point+refine", "box", "box+mp", "box+refine", "full", "full-iou")
#: Table V rows as (negatives_in_first_stage, negatives_in_refinement)
NEGATIVE_FLAGS = {"neg: multi-prompt only": (True, False), "neg: refinement only": (False, True),
                  "neg: both": (True, True)}
SYNTHETIC_NOTE = "SYNTHETIC (generated data or a stand-in segmenter): checks the pipeline, NOT the paper's numbers"


# --- rows ----------------------------------------------------------------------------------------------------------
def negative_configs(base: SamPDConfig) -> Dict[str, SamPDConfig]:
    """Table V rows: the ``config.PRESETS`` entries that set the negative-point flags if there are such presets,
    else ``base`` with the flags set here."""
    named = {name: SamPDConfig.preset(name) for name, d in PRESETS.items()
             if name == "full" or set(d) & {"negatives_in_first_stage", "negatives_in_refinement"}}
    rows = {}
    for label, (first, refine) in NEGATIVE_FLAGS.items():
        match = [n for n, c in named.items() if (c.negatives_in_first_stage, c.negatives_in_refinement) ==
                 (first, refine) and c.refine and c.multi_prompt and c.negative_points > 0]
        rows[match[0] if match else label] = (SamPDConfig.preset(match[0]) if match else
                                              base.replace(negatives_in_first_stage=first,
                                                           negatives_in_refinement=refine))
    return rows


def adaptive_configs(base: SamPDConfig) -> Dict[str, SamPDConfig]:
    """``--adaptive`` rows: ``base`` without adaptive denoising (the reference of the pass ratio), then with it."""
    return {"adaptive off": base.replace(adaptive=False), "adaptive on": base.replace(adaptive=True)}


def backend_provider(model, checkpoint: Optional[str] = None, device: Optional[str] = None,
                     model_kwargs: Optional[dict] = None):
    """``(sequence -> PromptableSegmenter, model name)`` for a model name, an import path ``module:Name`` or an
    instance; each sequence gets the segmenter's
    :meth:`~sampd_plugin.backends.base.PromptableSegmenter.for_sequence` (``ValueError`` naming the sequence when it
    cannot segment it)."""
    name = None
    if isinstance(model, str) and ":" in model:
        model, name = load_segmenter(model, **(model_kwargs or {}))
    cache = BackendCache(model, checkpoint, device)

    def get(seq):
        try:
            return cache.get().for_sequence({"name": seq.name, SCENE_FIELD: seq.scene_params})
        except ValueError as e:
            raise ValueError(f"sequence {seq.name}: {e}") from None

    return get, name or cache.model


def read_sequences(dataset: str, root: str, split: str, resolution: str = "480p", all_frames="auto",
                   names: Optional[List[str]] = None, limit: Optional[int] = None):
    from sampd_plugin.datasets.davis import read_davis
    from sampd_plugin.datasets.uvo import read_uvo
    from sampd_plugin.datasets.youtube_vos import read_youtube_vos

    if dataset == "davis":
        seqs = read_davis(root, split, resolution, names)
    elif dataset == "ytvos":
        seqs = read_youtube_vos(root, split, all_frames, names)
    else:
        seqs = read_uvo(root, split, videos=names)
    return seqs[:limit] if limit else seqs


def read_seen(path: Optional[str], root: str) -> Optional[set]:
    """Seen categories: a file (one per line, or a YouTube-VOS ``meta.json``), else ``<root>/train/meta.json``."""
    from sampd_plugin.datasets.base import read_json
    from sampd_plugin.datasets.youtube_vos import check_meta, seen_categories

    if not path:
        return seen_categories(root)
    if path.endswith(".json"):
        videos = check_meta(read_json(path), path)
        return {o["category"] for v in videos.values() for o in v.get("objects", {}).values()}
    with open(path) as f:
        return {line.strip() for line in f.read().splitlines() if line.strip()}


# --- formatting ----------------------------------------------------------------------------------------------------
COLUMNS = {
    "davis": ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "F-Recall", "J-Decay", "F-Decay"),
    "ytvos": ("G", "J_seen", "F_seen", "J_unseen", "F_unseen", "J-Mean", "F-Mean"),
    "uvo": ("AR100", "ARs", "ARm", "ARl", "AP"),
}


def format_rows(rows: Dict[str, dict], columns, title: str = "", extra=("encoder_ms", "sampd_ms")) -> str:
    """A text table: scores x100 (one decimal), then the ``extra`` columns (timings in ms; ratios with three
    decimals)."""
    lines = [title] if title else []
    extra = [c for c in extra if any(c in r for r in rows.values())]
    widths = [max(12, len(c) + 2) for c in extra]
    lines.append(f"{'row':<24}" + "".join(f"{c:>10}" for c in columns)
                 + "".join(f"{c:>{w}}" for c, w in zip(extra, widths)))
    for name, row in rows.items():
        vals = "".join(f"{_pct(row.get(c)):>10}" for c in columns)
        lines.append(f"{name:<24}" + vals + "".join(f"{row.get(c, float('nan')):>{w}.{3 if 'ratio' in c else 1}f}"
                                                    for c, w in zip(extra, widths)))
    return "\n".join(lines)


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "item"):
        return _json_safe(x.item())
    return x


# --- main ----------------------------------------------------------------------------------------------------------
class CliError(ValueError):
    """A user error of the command line (the message names the argument or the file)."""


#: what a user's input can raise (a missing or corrupt file, a bad value, a model that cannot be imported or
#: loaded): one line on stderr and exit status 2, the traceback only with ``--debug``
USER_ERRORS = (ValueError, OSError, ImportError, CheckpointLoadError)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """argparse's refusals in one line (no usage block), exit status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sampd_plugin.benchmark", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=DATASETS, help="dataset layout of --root")
    p.add_argument("--root", help="the dataset folder (DAVIS: holds JPEGImages/, Annotations/, ImageSets/; "
                                  "YouTube-VOS: holds valid/ (and valid_all_frames/, train/meta.json); UVO: holds "
                                  "VideoDenseSet/ and uvo_videos_dense_frames/)")
    p.add_argument("--split", help="DAVIS val|train, YouTube-VOS valid|train, UVO val|test (defaults: the paper's)")
    p.add_argument("--resolution", default="480p", help="DAVIS resolution folder (default 480p)")
    p.add_argument("--all-frames", choices=("auto", "yes", "no"), default="auto",
                   help="YouTube-VOS: track through <split>_all_frames when present (auto), always, never")
    p.add_argument("--model", help="vit_h | vit_l | vit_b | tiny | synthetic | package.module:Name (default: "
                                   "synthetic for generated trees, else vit_h)")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments for a package.module:Name model")
    p.add_argument("--checkpoint", help="SAM checkpoint path")
    p.add_argument("--device", help="torch device (default: cuda when available)")
    p.add_argument("--preset", default="full", help=f"configuration of the main row: {list(PRESETS)}")
    p.add_argument("--multimask-pick", choices=("largest", "max_iou_prev"),
                   help="refinement's pick (default: largest; YouTube-VOS: max_iou_prev, as in the paper)")
    p.add_argument("--ablation", action="store_true", help="Table III rows")
    p.add_argument("--negatives", action="store_true", help="Table V rows")
    p.add_argument("--timing", action="store_true", help="Table IV: encoder / SAM-PD ms per grid")
    p.add_argument("--oracle", action="store_true", help="the supplement's oracle experiment (Fig. 7)")
    p.add_argument("--adaptive", action="store_true",
                   help="--preset without vs with adaptive denoising (not in the paper): scores and decoder passes")
    p.add_argument("--out", help="output folder (default ./sampd-benchmark/<dataset>)")
    p.add_argument("--sequences", nargs="+", help="only these sequences / videos")
    p.add_argument("--max-sequences", type=int, help="only the first N sequences")
    p.add_argument("--max-frames", type=int, help="oracle: only the first N annotated frames of each sequence")
    p.add_argument("--max-objects", type=int, default=100, help="UVO: automatic masks per video (paper: 100)")
    p.add_argument("--seen-categories", help="YouTube-VOS: file of seen categories (one per line, or a meta.json; "
                                             "default: <root>/train/meta.json)")
    g = p.add_argument_group("synthetic (generated DAVIS tree)")
    g.add_argument("--videos", type=int, default=3)
    g.add_argument("--frames", type=int, default=12)
    g.add_argument("--objects", type=int, default=3)
    g.add_argument("--height", type=int, default=120)
    g.add_argument("--width", type=int, default=160)
    g.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (default: one line)")
    return p


def check_args(args):
    """Checks the arguments before anything is read or written; :class:`CliError` naming the argument."""
    if args.dataset != "synthetic":
        if not args.root:
            raise CliError(f"{args.dataset}: --root is required (the dataset folder)")
        if not os.path.isdir(args.root):
            raise CliError(f"--root {args.root}: no such folder")
    if args.preset not in PRESETS:
        raise CliError(f"--preset {args.preset!r}: unknown preset; choose one of {list(PRESETS)}")
    try:
        checks.device(args.device, "--device")
    except ValueError as e:
        raise CliError(str(e)) from None
    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as e:
        raise CliError(f"--model-kwargs {args.model_kwargs!r}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(kwargs, dict):
        raise CliError(f"--model-kwargs {args.model_kwargs!r}: must be a JSON object of keyword arguments")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out}: is a file, not a folder")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise CliError(f"--checkpoint {args.checkpoint}: no such file")
    for name in ("max_sequences", "max_frames", "max_objects", "videos", "frames", "objects", "height", "width"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run(args, log: Callable[[str], None]) -> dict:
    """Runs what ``args`` ask for; returns the results dict (also written to ``<out>/results.json``)."""
    from sampd_plugin.datasets.base import read_sidecar

    dataset = args.dataset
    out = os.path.abspath(args.out or os.path.join("sampd-benchmark", dataset))  # created when written to
    root = args.root
    if dataset == "synthetic":
        from sampd_plugin.synthetic.trees import write_davis

        root = root or os.path.join(out, "tree")
        if not os.path.isdir(os.path.join(root, "JPEGImages")):
            log(f"writing a generated DAVIS tree to {root}")
            write_davis(root, args.videos, args.frames, args.objects, args.height, args.width, args.seed)
        kind = "davis"
    else:
        kind = dataset
    split = args.split or DEFAULT_SPLITS[dataset]
    generated = bool(read_sidecar(root))
    model = args.model or ("synthetic" if generated else "vit_h")
    backend_for, model_name = backend_provider(model, args.checkpoint, args.device, json.loads(args.model_kwargs))
    synthetic = generated or model_name in ("synthetic", "tiny")
    seqs = read_sequences(kind, root, split, args.resolution,
                          {"auto": "auto", "yes": True, "no": False}[args.all_frames], args.sequences,
                          args.max_sequences)
    log(f"{dataset} {split}: {len(seqs)} sequences from {root}; model {model_name}")
    base = SamPDConfig.preset(args.preset)
    pick = args.multimask_pick or ("max_iou_prev" if kind == "ytvos" else None)

    def adapt(cfg: SamPDConfig) -> SamPDConfig:
        return cfg.replace(multimask_pick=pick) if pick else cfg

    seen = read_seen(args.seen_categories, root) if kind == "ytvos" else None
    title_note = f" [{SYNTHETIC_NOTE}]" if synthetic else ""
    results = {"dataset": dataset, "split": split, "root": root, "model": model_name, "preset": args.preset,
               "synthetic": synthetic, "sequences": [s.name for s in seqs], "tables": {}}

    def rows_for(configs: Dict[str, SamPDConfig], table: str) -> Dict[str, dict]:
        rows = {}
        for name, cfg in configs.items():
            log(f"{table}: {name}")
            row_out = os.path.join(out, table, _slug(name))
            shutil.rmtree(row_out, ignore_errors=True)  # the row's own folder: no stale predictions of a past run
            if kind == "uvo":
                from sampd_plugin.benchmark.vis import run_vis

                rows[name] = run_vis(seqs, backend_for, adapt(cfg), row_out, args.max_objects, log)
            else:
                from sampd_plugin.benchmark.vos import run_vos

                rows[name] = run_vos(seqs, backend_for, adapt(cfg), kind, row_out, seen, log)
            rows[name]["config"] = adapt(cfg).to_dict()
        return rows

    cols = COLUMNS[kind]
    printed = []
    main_rows = rows_for({args.preset: base}, "main")
    results["tables"]["main"] = main_rows
    label = {"davis": "Table I (DAVIS 2017)", "ytvos": "Table I (YouTube-VOS 2018)", "uvo": "Table II (UVO 1.0)"}
    printed.append(format_rows(main_rows, cols, f"{label[kind]} {split}, model {model_name}{title_note}"))
    if kind == "ytvos" and not main_rows[args.preset]["scored"]:
        printed.append(f"no local ground truth for {split}: submit {main_rows[args.preset].get('submission')} to "
                       "the YouTube-VOS evaluation server for the scores")
    if args.ablation:
        t = rows_for({n: SamPDConfig.preset(n) for n in ABLATION_ROWS}, "ablation")
        results["tables"]["ablation"] = t
        printed.append(format_rows(t, cols, f"Table III ablation, model {model_name}{title_note}"))
    if args.negatives:
        t = rows_for(negative_configs(base), "negatives")
        results["tables"]["negatives"] = t
        printed.append(format_rows(t, cols, f"Table V negative points, model {model_name}{title_note}"))
    if args.timing:
        from sampd_plugin.benchmark.timing import TABLE_IV_GRIDS, grid_config, grid_label

        configs = {grid_label(s, k): grid_config(base, s, k) for s, k in TABLE_IV_GRIDS}
        t = rows_for(configs, "timing")
        for name, cfg in configs.items():
            t[name]["prompts"] = cfg.num_prompts
        results["tables"]["timing"] = t
        printed.append(format_rows(t, cols[:3], f"Table IV timing (ms per frame), model {model_name}, "
                                                f"device {_device(backend_for, seqs)}{title_note}",
                                   extra=("prompts", "encoder_ms", "sampd_ms")))
    if args.adaptive:
        t = rows_for(adaptive_configs(base), "adaptive")
        ref = next(iter(t.values()))["decoded_prompts"]
        for row in t.values():
            row["pass_ratio"] = row["decoded_prompts"] / ref if ref else float("nan")
        results["tables"]["adaptive"] = t
        printed.append(format_rows(t, cols[:3], f"Adaptive denoising (not in the paper): decoder passes, model "
                                                f"{model_name}{title_note}",
                                   extra=("decoded_prompts", "pass_ratio", "sampd_ms")))
    if args.oracle:
        from sampd_plugin.benchmark.oracle import format_oracle, run_oracle

        if kind == "uvo":
            raise CliError("--oracle runs on DAVIS / YouTube-VOS trees with ground truth (paper: DAVIS val)")
        res = run_oracle(seqs, backend_for, max_frames=args.max_frames, progress=log)
        results["tables"]["oracle"] = res
        printed.append(format_oracle(res, f"Oracle experiment (supplement Fig. 7), model {model_name}{title_note}"))
    results["report"] = "\n\n".join(printed)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.json")
    with open(path, "w") as f:
        json.dump(_json_safe(results), f, indent=1)
    results["path"] = path
    return results


def _device(backend_for, seqs) -> str:
    try:
        return str(backend_for(seqs[0]).device) if seqs else "?"
    except Exception:
        return "?"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("+", "-plus-")).strip("_")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):  # the in-memory ablation
        from sampd_plugin.benchmark import main as ablation_main

        return ablation_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    t0 = time.time()
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    try:
        check_args(args)
        results = run(args, log)
    except USER_ERRORS as e:
        if args.debug:
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        parser.exit(2, f"{parser.prog}: error: {message} (--debug shows the traceback)\n")
    print(results["report"])
    print(f"\nresults: {results['path']} ({time.time() - t0:.1f} s)")
    return results


if __name__ == "__main__":
    main()
