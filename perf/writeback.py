"""Write-back: tracker output -> ``frames.<field>`` in FiftyOne, per number of objects; what each way of storing the
masks costs, what the tracking thread pays, and the writer's share of the end-to-end time.

Writes ``--frames`` frames of N tracked objects (full-resolution masks as the tracker yields them; N from
``--objects``, default 5 10 30 100; each object covers ``min(0.115, 0.6 / N)`` of the 480 x 854 frame on average, so
100 objects are automatic mode's many small masks) to one video sample of a throw-away dataset (private mongod).
Per N, in CPU ms per frame of this process (the database server's own work is not counted; fair on a shared
machine):

- the tracking thread: ``labels.frame_labels`` (what the tracking loop does: crop each mask to its box) against
  ``labels.frame_detections`` (the ``fo.Detection`` s the loop built before issue 22);
- the writer (on its own thread in a run): serialisation and bulk ``set_values`` of one frame, three ways of
  storing the masks: in the documents (``store.FrameLabelWriter``: ``labels.detections_document``), as
  ``mask_path`` PNG files (OpenCV level 1), and as detections without masks beside one ``fo.Segmentation`` label
  map per frame (uint8 object indices; lossy where objects overlap); and, for reference, ``fo.Detections`` built
  and written by ``set_values`` (the previous path);
- the writer beside a model stand-in (``--model-ms`` of torch matrix products per frame on one thread, which release
  the GIL as a model does): the tracking thread's time in ``frame_labels`` + ``add`` (in the loop) + the final ``flush``, as a share of the
  end-to-end wall time (best of 2), and the same in the tracking thread's CPU time.

Once (first N): per-frame ``frame.save()`` against the bulk writer (frame labels/s), the peak Python heap of the
bulk path for 2 and 8 chunks (flat in the video length) and the cost of encoding one mask each way FiftyOne reads.

    python perf/writeback.py [--objects 5 10 30 100] [--frames 32] [--batch-frames 16] [--model-ms 250] [--json f]
"""

import argparse
import io
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
    """Lazily yields ``FrameResult`` s of ``objects`` ellipses moving right: each covers ``min(0.115, 0.6 / objects)``
    of the frame on average (5 objects: ~300 x 200 px at 480 x 854; 100 objects: ~55 x 45 px), sizes varying by a
    factor of 3 between objects."""
    from sampd_plugin.core.prompts import mask_to_box
    from sampd_plugin.core.tracker import FrameResult, ObjectResult

    yy, xx = np.mgrid[0:height, 0:width]
    area = min(0.115, 0.6 / objects) * height * width / np.pi  # ry * rx of the mean object
    shapes = {}
    for i in range(1, objects + 1):
        f = 0.5 + (i * 0.618) % 1  # 0.5 .. 1.5
        ry, rx = np.sqrt(area * f * 1.2 * height / width), np.sqrt(area * f / 1.2 * width / height)
        cx, cy = (0.2 + 0.6 * ((i * 0.23) % 1)) * width, (0.25 + 0.5 * ((i * 0.37) % 1)) * height
        shapes[i] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    for fn in range(1, num_frames + 1):
        objs = {}
        for i, m in shapes.items():
            mask = np.roll(m, fn % max(1, width // 8), axis=1)
            objs[i] = ObjectResult(mask=mask, box=mask_to_box(mask), score=0.9, iou=0.95, lost=False,
                                   label=f"obj{i}", is_prompt=fn == 1)
        yield FrameResult(fn, objs)


def model_stand_in(ms):
    """A callable that keeps the CPU busy for about ``ms`` milliseconds in torch (GIL released), like a model."""
    import torch

    torch.set_num_threads(1)  # one core, as a GPU model's host thread: the writer's thread has the other cores
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

    def zlib1(m):
        with io.BytesIO() as f:
            np.save(f, m, allow_pickle=False)
            return zlib.compress(f.getvalue(), 1)

    def png(level):
        return lambda m: cv2.imencode(".png", m.view(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, level])[1]

    out = {}
    for name, fn in [("in-document (FiftyOne: zlib 6)", fou.serialize_numpy_array),
                     ("in-document, zlib 1 (not selectable)", zlib1),
                     ("mask_path PNG level 1", png(1)), ("mask_path PNG level 3", png(3))]:
        best = float("inf")
        for _ in range(repeats):
            t = time.process_time()
            size = sum(len(fn(m)) for m in masks)
            best = min(best, time.process_time() - t)
        out[name] = dict(ms_per_mask=1e3 * best / len(masks), bytes_per_mask=size / len(masks))
    return out


def ways(hw, tmp):
    """``{way: [(field suffix, field type, objects -> document)]}``: what one frame's write is, for each way of
    storing the masks (documents as ``set_values(validate=False)`` writes them)."""
    import cv2
    import fiftyone as fo
    import fiftyone.core.utils as fou
    from bson import Binary

    from sampd_plugin.fo import labels

    counter = iter(range(1 << 62))

    def with_paths(objects):
        doc = labels.detections_document([o._replace(mask=None) for o in objects])
        for d, o in zip(doc["detections"], objects):
            if o.mask is not None:
                d["mask_path"] = path = os.path.join(tmp, f"{next(counter):09d}.png")
                cv2.imwrite(path, o.mask.view(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        return doc

    def label_map(objects):
        out = np.zeros(hw, np.uint8 if len(objects) < 256 else np.uint16)
        for o in objects:  # later objects win where they overlap
            if o.mask is not None:
                x, y = round(o.bounding_box[0] * hw[1]), round(o.bounding_box[1] * hw[0])
                h, w = o.mask.shape
                out[y:y + h, x:x + w][o.mask] = o.index
        return dict(_cls="Segmentation", mask=Binary(fou.serialize_numpy_array(out)))

    detections = (fo.Detections, labels.detections_document)
    return {
        "in-document": [("doc", *detections)],
        "mask_path PNG": [("path", fo.Detections, with_paths)],
        "instances + label map": [("inst", fo.Detections,
                                   lambda objects: labels.detections_document([o._replace(mask=None)
                                                                               for o in objects])),
                                  ("map", fo.Segmentation, label_map)],
    }


def size_row(layout, seq, n, frames, hw, batch_frames, model, model_ms, tmp):
    """The per-N measurements (module docstring) -> dict."""
    import fiftyone as fo
    import fiftyone.core.fields as fof

    from sampd_plugin.fo import labels, store

    row = dict(objects=n, frames=frames)
    crops = dets = 0.0
    objects = []
    for r in results(frames, n, *hw):  # mask generation is not timed
        t = time.process_time()
        objects.append((r.frame_number, labels.frame_labels(r, hw)))
        t1 = time.process_time()
        labels.frame_detections(r, hw)
        crops, dets = crops + t1 - t, dets + time.process_time() - t1
    row.update(frame_labels_ms=1e3 * crops / frames, frame_detections_ms=1e3 * dets / frames,
               mask_px=float(np.mean([o.mask.size for o in objects[0][1]])))

    def timed(field, ftype, make):
        name = f"{field}{n}"
        if ftype is fo.Detections:
            store.ensure_output_field(layout, name)
        else:
            layout.add_field(name, fof.EmbeddedDocumentField, embedded_doc_type=ftype)
        t = time.process_time()
        for a in range(0, frames, batch_frames):
            layout.write_labels(name, {seq.key: (seq, {fn: make(objs) for fn, objs in objects[a:a + batch_frames]})})
        return 1e3 * (time.process_time() - t) / frames

    row["write_ms"] = {way: sum(timed(*f) for f in fields) for way, fields in ways(hw, tmp).items()}
    row["write_ms"]["fo.Detections (before)"] = timed(
        "old", fo.Detections, lambda objs: fo.Detections(detections=[fo.Detection(
            **labels._detection_fields(o), **({} if o.mask is None else {"mask": o.mask})) for o in objs]))
    assert layout.dataset.count(layout.path(f"doc{n}") + ".detections") == frames * n

    # beside the model: the tracking thread's share (crops + add, then the final flush), best of 2
    best = None
    for _ in range(2):
        w = store.BackgroundWriter(store.FrameLabelWriter(layout, f"doc{n}", batch_frames=batch_frames))
        loop = cpu = total = 0.0
        for r in results(frames, n, *hw):  # mask generation is not timed
            t = time.perf_counter()
            model()
            t1, c1 = time.perf_counter(), time.thread_time()
            w.add(seq, r.frame_number, labels.frame_labels(r, hw))
            loop, cpu = loop + time.perf_counter() - t1, cpu + time.thread_time() - c1
            total += time.perf_counter() - t
        t1, c1 = time.perf_counter(), time.thread_time()
        w.flush()
        flush, cpu = time.perf_counter() - t1, cpu + time.thread_time() - c1
        total += flush
        if best is None or (loop + flush) / total < best["writer_share"]:
            best = dict(writer_share=(loop + flush) / total, writer_share_loop=loop / total,
                        writer_share_cpu=cpu / total, final_flush_ms=1e3 * flush, frame_ms=1e3 * total / frames)
    row.update(model_ms=model_ms, **best)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, nargs="+", default=[5, 10, 30, 100])
    p.add_argument("--frames", type=int, default=32, help="frames per row")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--batch-frames", type=int, default=16)
    p.add_argument("--baseline-frames", type=int, default=16, help="frames of the per-frame save() baseline")
    p.add_argument("--model-ms", type=float, default=250.0,
                   help="model stand-in, ms per frame (250: a GPU frame with 100 objects at 10x one object)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from tests import isolated_db

    isolated_db.start()
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import fiftyone as fo

    from sampd_plugin.fo import labels, store
    from sampd_plugin.fo.sources import layout_of

    hw = (args.height, args.width)
    ds = fo.Dataset(f"sampd-bench-writeback-{uuid.uuid4().hex[:8]}")
    out = dict(frame=f"{args.width}x{args.height}", frames=args.frames, batch_frames=args.batch_frames, rows=[])
    try:
        sample = fo.Sample(filepath="/nonexistent/bench.mp4", metadata=fo.VideoMetadata(
            frame_width=args.width, frame_height=args.height, total_frame_count=args.frames))
        ds.add_sample(sample)
        layout = layout_of(ds)
        seq = layout.sequences()[0]
        model = model_stand_in(args.model_ms)
        print(f"write-back at {args.width}x{args.height}, {args.frames} frames per row, batch_frames="
              f"{args.batch_frames}; CPU ms per frame of this process (the database server not counted)", flush=True)
        with tempfile.TemporaryDirectory(prefix="sampd-masks-") as tmp:
            for n in args.objects:
                row = size_row(layout, seq, n, args.frames, hw, args.batch_frames, model, args.model_ms, tmp)
                out["rows"].append(row)
                w = row["write_ms"]
                print(f"  {n:>4} objects (~{row['mask_px']:.0f} px masks): tracking thread: frame_labels "
                      f"{row['frame_labels_ms']:.2f} (fo.Detections before: {row['frame_detections_ms']:.2f}) | "
                      f"writer: " + ", ".join(f"{k} {v:.1f}" for k, v in w.items()) +
                      f" | beside a {args.model_ms:.0f} ms model ({row['frame_ms']:.0f} ms/frame): the tracking "
                      f"thread's writing {100 * row['writer_share']:.2f} % of end to end wall (in the loop "
                      f"{100 * row['writer_share_loop']:.2f} %, final flush {row['final_flush_ms']:.0f} ms; CPU "
                      f"{100 * row['writer_share_cpu']:.2f} %)", flush=True)

        # once, on a sample of its own: per-frame save() against the bulk writer, peak heap, mask encodings
        n = args.objects[0]
        pre = list(results(args.baseline_frames, n, *hw))
        sample = fo.Sample(filepath="/nonexistent/bench2.mp4", metadata=sample.metadata)
        ds.add_sample(sample)
        layout = layout_of(ds)  # (a layout lists its sequences once)
        seq = next(s for s in layout.sequences() if s.head_id == sample.id)
        store.ensure_output_field(layout, "bulk")
        t = time.process_time()
        w = store.FrameLabelWriter(layout, "bulk", batch_frames=args.batch_frames)
        for r in pre:
            w.add(seq, r.frame_number, labels.frame_labels(r, hw))
        w.flush()
        bulk = len(pre) / (time.process_time() - t)
        store.ensure_output_field(layout, "saved")
        sample.reload()  # (the frames exist now: frame.save() writes only existing frames)
        t = time.process_time()
        for r in pre:
            frame = sample.frames[r.frame_number]
            frame["saved"] = labels.frame_detections(r, hw)
            frame.save()
        per_frame = len(pre) / (time.process_time() - t)
        out["save"] = dict(objects=n, per_frame_save=per_frame, bulk=bulk, ratio=bulk / per_frame)
        print(f"  {n} objects, {len(pre)} frames: per-frame save() {per_frame:.1f} vs bulk writer {bulk:.1f} frame "
              f"labels per CPU second: {bulk / per_frame:.2f}x", flush=True)

        peaks = {}
        for nf in (2 * args.batch_frames, 8 * args.batch_frames):
            tracemalloc.start()
            w = store.FrameLabelWriter(layout, "bulk", batch_frames=args.batch_frames)
            for r in results(nf, n, *hw):  # generated lazily, as the tracker yields them
                w.add(seq, r.frame_number, labels.frame_labels(r, hw))
            w.flush()
            peaks[nf] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        out["peak_heap_mib"] = peaks
        (a, pa), (b, pb) = sorted(peaks.items())
        print(f"  peak heap, bulk path: {pa:.1f} MiB for {a} frames, {pb:.1f} MiB for {b} frames (ratio "
              f"{pb / pa:.2f})")
        out["encoding"] = encoding_costs([o.mask for r in pre[:4] for o in labels.frame_labels(r, hw)])
        print("  mask encodings (ms per mask, bytes per mask; FiftyOne reads all of them):")
        for name, e in out["encoding"].items():
            print(f"    {name:<40} {e['ms_per_mask']:7.3f} ms  {e['bytes_per_mask']:9.0f} B")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        ds.delete()
    return out


if __name__ == "__main__":
    main()
