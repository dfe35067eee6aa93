"""Write-back: tracker output -> ``frames.<field>`` in FiftyOne; throughput, cost on the critical path, mask encoding.

Writes ``--frames`` frames of ``--objects`` tracked objects (full-resolution masks as the tracker yields them;
default 5 objects of ~300 x 200 px on 480 x 854) to one video sample of a throw-away dataset (private mongod) and
prints, measured in this one run:

- frame labels/s of ``labels.frame_detections`` alone (``convert``), of the bulk writer (``store.FrameLabelWriter``,
  ``set_values`` every ``--batch-frames`` frames) and of per-frame ``frame.save()`` (the baseline, first
  ``--baseline-frames`` frames), and their ratio;
- the critical path with ``store.BackgroundWriter`` (what ``sampd_plugin.track`` does): a stand-in for the model
  (``--model-ms`` of torch matrix products per frame, which release the GIL as the encoder does) runs with and
  without the writer; the writer's share of the end-to-end time is (with - without) / with;
- the cost of encoding one mask the ways FiftyOne can read it: in the document (FiftyOne's
  ``serialize_numpy_array``: ``np.save`` + zlib level 6, the only level it writes; zlib level 1 for comparison, not
  selectable through FiftyOne) and as a ``mask_path`` PNG file (OpenCV, compression levels 1 and 3), and the
  throughput of writing ``mask_path`` detections (PNG files + ``set_values``);
- the peak Python heap (tracemalloc) of the bulk path with results produced lazily, for 2 and 8 chunks of frames:
  memory stays flat in the video length (bounded by one chunk).

    python perf/writeback.py --frames 300 --objects 5 --height 480 --width 854 [--json out.json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def results(num_frames, objects, height, width):
    """Lazily yields ``FrameResult`` s of ``objects`` ellipses (~0.35 x 0.42 of the frame) moving right."""
    from sampd_plugin.core.tracker import FrameResult, ObjectResult

    yy, xx = np.mgrid[0:height, 0:width]
    ry, rx = 0.21 * height, 0.175 * width  # 480 x 854: ~200 x 300 px boxes
    shapes = {}
    for i in range(1, objects + 1):
        cx, cy = (0.2 + 0.6 * ((i * 0.23) % 1)) * width, (0.25 + 0.5 * ((i * 0.37) % 1)) * height
        shapes[i] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    for fn in range(1, num_frames + 1):
        objs = {i: ObjectResult(mask=np.roll(m, fn % max(1, width // 8), axis=1), box=None, score=0.9, iou=0.95,
                                lost=False, label=f"obj{i}", is_prompt=fn == 1) for i, m in shapes.items()}
        yield FrameResult(fn, objs)


def model_stand_in(ms):
    """A callable that keeps the CPU busy for about ``ms`` milliseconds in torch (GIL released), like the encoder."""
    import torch

    a = torch.randn(256, 256)
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < 0.2:
        a @ a
        n += 1
    reps = max(1, int(n / 0.2 * ms / 1e3))
    return lambda: [a @ a for _ in range(reps)]


def encoding_costs(masks, repeats=3):
    """ms per mask for each encoding FiftyOne can read (and zlib level 1 for comparison)."""
    import cv2
    import fiftyone.core.utils as fou

    def in_doc(m):
        return fou.serialize_numpy_array(m)

    def zlib1(m):
        import io

        with io.BytesIO() as f:
            np.save(f, m, allow_pickle=False)
            return zlib.compress(f.getvalue(), 1)

    def png(level):
        return lambda m: cv2.imencode(".png", m.view(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, level])[1]

    out = {}
    for name, fn in [("in-document (FiftyOne: zlib 6)", in_doc), ("in-document, zlib 1 (not selectable)", zlib1),
                     ("mask_path PNG level 1", png(1)), ("mask_path PNG level 3", png(3))]:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            size = sum(len(fn(m)) for m in masks)
            best = min(best, time.perf_counter() - t)
        out[name] = dict(ms_per_mask=1e3 * best / len(masks), bytes_per_mask=size / len(masks))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--objects", type=int, default=5)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--batch-frames", type=int, default=128)
    p.add_argument("--baseline-frames", type=int, default=60)
    p.add_argument("--model-ms", type=float, default=200.0,
                   help="per-frame model time of the critical-path run (CPU tiny SAM ~0.3 s/frame, ViT-H GPU ~0.4 s)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from tests import isolated_db

    isolated_db.start()
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import cv2
    import fiftyone as fo

    from sampd_plugin.fo import labels, store
    from sampd_plugin.fo.sources import layout_of

    hw = (args.height, args.width)
    ds = fo.Dataset(f"sampd-bench-writeback-{uuid.uuid4().hex[:8]}")
    out = {}
    try:
        sample = fo.Sample(filepath="/nonexistent/bench.mp4", metadata=fo.VideoMetadata(
            frame_width=args.width, frame_height=args.height, total_frame_count=args.frames))
        ds.add_sample(sample)
        layout = layout_of(ds)
        seq = layout.sequences()[0]
        for f in ("bulk", "saved", "background", "paths"):
            store.ensure_output_field(layout, f)
        pre = list(results(args.frames, args.objects, *hw))  # masks made up front: not part of the timings

        t = time.perf_counter()
        converted = [labels.frame_detections(r, hw) for r in pre]
        out["convert"] = args.frames / (time.perf_counter() - t)

        t = time.perf_counter()
        w = store.FrameLabelWriter(layout, "bulk", batch_frames=args.batch_frames)
        for r in pre:
            w.add(seq, r.frame_number, labels.frame_detections(r, hw))
        w.flush()
        out["bulk"] = args.frames / (time.perf_counter() - t)
        assert ds.count("frames.bulk.detections") == args.frames * args.objects

        n = min(args.baseline_frames, args.frames)
        sample.reload()
        t = time.perf_counter()
        for r in pre[:n]:
            frame = sample.frames[r.frame_number]
            frame["saved"] = labels.frame_detections(r, hw)
            frame.save()
        out["per_frame_save"] = n / (time.perf_counter() - t)

        # critical path: the model stand-in alone, then with the background writer (interleaved, best of 2)
        model = model_stand_in(args.model_ms)
        k = min(args.frames, 100)
        alone, with_writer, add_s = [], [], []
        for _ in range(2):
            t = time.perf_counter()
            for r in pre[:k]:
                model()
                labels.frame_detections(r, hw)
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            w = store.BackgroundWriter(store.FrameLabelWriter(layout, "background", batch_frames=args.batch_frames))
            spent = 0.0
            for r in pre[:k]:
                model()
                label = labels.frame_detections(r, hw)
                t1 = time.perf_counter()
                w.add(seq, r.frame_number, label)
                spent += time.perf_counter() - t1
            t1 = time.perf_counter()
            w.flush()
            spent += time.perf_counter() - t1
            with_writer.append(time.perf_counter() - t)
            add_s.append(spent)
        out["critical_path"] = dict(frames=k, model_ms=args.model_ms, seconds_alone=min(alone),
                                    seconds_with_writer=min(with_writer), seconds_in_add_and_flush=min(add_s))

        # mask encodings FiftyOne reads, and the mask_path write path
        crops = [d.mask for label in converted[:20] for d in label.detections]
        out["encoding"] = encoding_costs(crops)
        with tempfile.TemporaryDirectory(prefix="sampd-masks-") as tmp:
            t = time.perf_counter()
            w = store.FrameLabelWriter(layout, "paths", batch_frames=args.batch_frames)
            for r, label in zip(pre, converted):
                dets = []
                for d in label.detections:
                    path = os.path.join(tmp, f"{r.frame_number:06d}_{d.index}.png")
                    cv2.imwrite(path, d.mask.view(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
                    dets.append(fo.Detection(label=d.label, bounding_box=d.bounding_box, index=d.index,
                                             mask_path=path))
                w.add(seq, r.frame_number, fo.Detections(detections=dets))
            w.flush()
            out["mask_path"] = args.frames / (time.perf_counter() - t)
            back = ds.first().frames[1]["paths"].detections[0]
            assert back.mask_path and back.get_mask().shape == converted[0].detections[0].mask.shape

        peaks = {}
        for nf in (2 * args.batch_frames, 8 * args.batch_frames):
            tracemalloc.start()
            w = store.FrameLabelWriter(layout, "bulk", batch_frames=args.batch_frames)
            for r in results(nf, args.objects, *hw):  # generated lazily, as the tracker yields them
                w.add(seq, r.frame_number, labels.frame_detections(r, hw))
            w.flush()
            peaks[nf] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        out["peak_heap_mib"] = peaks

        cp = out["critical_path"]
        share = max(0.0, cp["seconds_with_writer"] - cp["seconds_alone"]) / cp["seconds_with_writer"]
        print(f"write-back of {args.frames} frames x {args.objects} objects at {args.width}x{args.height}, masks "
              f"~{crops[0].shape[1]}x{crops[0].shape[0]} px (batch_frames={args.batch_frames}):")
        print(f"  convert only                 {out['convert']:9.1f} frame labels/s")
        print(f"  bulk set_values (in-doc)     {out['bulk']:9.1f} frame labels/s")
        print(f"  bulk set_values (mask_path)  {out['mask_path']:9.1f} frame labels/s (PNG level 1 files + set_values)")
        print(f"  per-frame save()             {out['per_frame_save']:9.1f} frame labels/s (first {n} frames)")
        print(f"  ratio bulk / per-frame save  {out['bulk'] / out['per_frame_save']:9.2f}x (target >= 8x)")
        print(f"  background writer, {k} frames with a {args.model_ms:.0f} ms model stand-in: "
              f"{cp['seconds_alone']:.2f} s alone, {cp['seconds_with_writer']:.2f} s with the writer; time in "
              f"add()+flush() {cp['seconds_in_add_and_flush']:.3f} s; writer share of end-to-end "
              f"{100 * share:.1f} % (target <= 2 %)")
        (a, pa), (b, pb) = sorted(peaks.items())
        print(f"  peak heap, bulk path    {pa:.1f} MiB for {a} frames, {pb:.1f} MiB for {b} frames (ratio {pb / pa:.2f})")
        print("  mask encodings (ms per mask, bytes per mask; FiftyOne reads all of them):")
        for name, e in out["encoding"].items():
            print(f"    {name:<40} {e['ms_per_mask']:7.3f} ms  {e['bytes_per_mask']:9.0f} B")
        out["writer_share"] = share
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        ds.delete()
    return out


if __name__ == "__main__":
    main()
