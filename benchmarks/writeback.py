"""Write-back throughput: tracker output -> ``frames.<field>`` in FiftyOne, in frame labels per second.

Writes ``--frames`` frames of ``--objects`` tracked objects (full-resolution masks, as the tracker yields them) to
one video sample of a throw-away dataset three ways and prints frame labels/s:

- ``convert``: ``labels.frame_detections`` only (mask crop to the box, relative box, attributes);
- ``bulk``: conversion + ``store.FrameLabelWriter`` (``set_values`` every ``--batch-frames`` frames), what
  ``sampd_plugin.track`` does;
- ``per-frame save``: conversion + ``frame[field] = label; frame.save()`` per frame, on the first
  ``--baseline-frames`` frames (the pattern the bulk writer replaces).

It also prints the peak Python heap (tracemalloc) of the bulk path, with results produced lazily as the tracker
yields them, for 2 and 8 chunks of frames: memory stays flat in the video length (bounded by one chunk).

    python benchmarks/writeback.py --frames 300 --objects 5 --height 480 --width 854
"""

import argparse
import time
import tracemalloc
import uuid

import numpy as np


def results(num_frames, objects, height, width):
    """Lazily yields ``FrameResult`` s of ``objects`` ellipses moving right (full-resolution bool masks)."""
    from sampd_plugin.tracker import FrameResult, ObjectResult

    yy, xx = np.mgrid[0:height, 0:width]
    r = min(height, width) * 0.12
    shapes = {}
    for i in range(1, objects + 1):
        cx, cy = (0.15 + 0.5 * ((i * 0.23) % 1)) * width, (0.2 + 0.6 * ((i * 0.37) % 1)) * height
        shapes[i] = ((xx - cx) / (1.3 * r)) ** 2 + ((yy - cy) / r) ** 2 < 1
    for fn in range(1, num_frames + 1):
        objs = {i: ObjectResult(mask=np.roll(m, fn % max(1, width // 4), axis=1), box=None, score=0.9, iou=0.95,
                                lost=False, label=f"obj{i}", is_prompt=fn == 1) for i, m in shapes.items()}
        yield FrameResult(fn, objs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--objects", type=int, default=5)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--batch-frames", type=int, default=64)
    p.add_argument("--baseline-frames", type=int, default=60)
    args = p.parse_args()

    import fiftyone as fo

    from sampd_plugin import labels, store

    hw = (args.height, args.width)
    ds = fo.Dataset(f"sampd-bench-writeback-{uuid.uuid4().hex[:8]}")
    try:
        sample = fo.Sample(filepath="/nonexistent/bench.mp4", metadata=fo.VideoMetadata(
            frame_width=args.width, frame_height=args.height, total_frame_count=args.frames))
        ds.add_sample(sample)
        store.ensure_output_field(ds, "bulk")
        store.ensure_output_field(ds, "saved")
        pre = list(results(args.frames, args.objects, *hw))  # masks made up front: not part of the timings

        t = time.perf_counter()
        for r in pre:
            labels.frame_detections(r, hw)
        convert = args.frames / (time.perf_counter() - t)

        def bulk(frames):
            w = store.FrameLabelWriter(ds, "bulk", batch_frames=args.batch_frames)
            for r in frames:
                w.add(sample.id, r.frame_number, labels.frame_detections(r, hw))
            w.flush()
            return w

        t = time.perf_counter()
        w = bulk(pre)
        bulk_rate = args.frames / (time.perf_counter() - t)
        assert ds.count("frames.bulk.detections") == args.frames * args.objects

        n = min(args.baseline_frames, args.frames)
        sample.reload()
        t = time.perf_counter()
        for r in pre[:n]:
            frame = sample.frames[r.frame_number]
            frame["saved"] = labels.frame_detections(r, hw)
            frame.save()
        saved_rate = n / (time.perf_counter() - t)
        del pre

        peaks = {}
        for nf in (2 * args.batch_frames, 8 * args.batch_frames):
            tracemalloc.start()
            bulk(results(nf, args.objects, *hw))  # results generated lazily, as the tracker yields them
            peaks[nf] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()

        print(f"write-back of {args.frames} frames x {args.objects} objects at {args.width}x{args.height} "
              f"(batch_frames={args.batch_frames}, {w.calls} set_values calls):")
        print(f"  convert only          {convert:9.1f} frame labels/s")
        print(f"  bulk set_values       {bulk_rate:9.1f} frame labels/s  ({bulk_rate * args.objects:.0f} objects/s)")
        print(f"  per-frame save()      {saved_rate:9.1f} frame labels/s  (first {n} frames)")
        print(f"  bulk / per-frame      {bulk_rate / saved_rate:9.2f}x")
        (a, pa), (b, pb) = sorted(peaks.items())
        print(f"  peak heap, bulk path  {pa:.1f} MiB for {a} frames, {pb:.1f} MiB for {b} frames "
              f"(ratio {pb / pa:.2f})")
    finally:
        ds.delete()


if __name__ == "__main__":
    main()
