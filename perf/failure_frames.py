"""Failure-view frame images: decoding only the failure frames (what ``sampd_plugin.fo.views`` does) vs every frame.

Builds a generated dataset (``--videos`` x ``--frames`` frames, ``--height`` x ``--width``) whose predictions are
its ground truth with object 1 dropped on every ``--every``-th frame (J = 0 there: the failure frames), then times
and sizes, in one run, on a private MongoDB:

- ``failure frames``: ``views.failure_frames`` (``to_frames(sample_frames=True, sparse=True)`` of the matching
  frames), the images the failure views need;
- ``every frame``: ``to_frames(sample_frames=True)`` of the whole videos (FiftyOne's default).

    python perf/failure_frames.py --videos 2 --frames 120 --every 10
"""

import argparse
import os
import shutil
import tempfile
import time


def folder_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs), \
        sum(len(fs) for _, _, fs in os.walk(root))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    args = p.parse_args()

    from tests import isolated_db

    isolated_db.start()
    tmp = tempfile.mkdtemp(prefix="sampd-bench-frames-")
    os.environ["SAMPD_FRAMES_DIR"] = os.path.join(tmp, "sparse")
    import fiftyone as fo
    from fiftyone import ViewField as F

    from sampd_plugin.fo import views
    from sampd_plugin.synthetic import make_dataset

    try:
        ds = make_dataset(num_videos=args.videos, num_frames=args.frames, num_objects=2, height=args.height,
                          width=args.width, output_dir=os.path.join(tmp, "videos"))
        ids, fns, gts = ds.values(["id", "frames.frame_number", "frames.ground_truth"])
        ds.set_values("frames.pred", {
            sid: {fn: fo.Detections(detections=[d for d in gt.detections if fn % args.every or d.index != 1])
                  for fn, gt in zip(sfns, sgts)} for sid, sfns, sgts in zip(ids, fns, gts)}, key_field="id")
        ds.set_values("frames.failed", [[fn % args.every == 0 for fn in sfns] for sfns in fns])

        t0 = time.perf_counter()
        sparse = views.failure_frames(ds, F("failed") == True)  # noqa: E712
        t_sparse = time.perf_counter() - t0
        b_sparse, n_sparse = folder_bytes(views.frames_dir(ds))

        ds.delete_frame_field("filepath")
        t0 = time.perf_counter()
        full = ds.to_frames(sample_frames=True, output_dir=os.path.join(tmp, "full"))
        t_full = time.perf_counter() - t0
        b_full, n_full = folder_bytes(os.path.join(tmp, "full"))

        total = args.videos * args.frames
        print(f"{args.videos} videos x {args.frames} frames ({args.height}x{args.width}), failure every "
              f"{args.every}th frame")
        print(f"failure frames: {len(sparse)} samples, {n_sparse} images, {b_sparse / 2**20:.2f} MiB, {t_sparse:.2f} s")
        print(f"every frame:    {len(full)} samples, {n_full} images, {b_full / 2**20:.2f} MiB, {t_full:.2f} s")
        print(f"ratio (every / failure): images {n_full / max(n_sparse, 1):.1f}x, bytes "
              f"{b_full / max(b_sparse, 1):.1f}x, time {t_full / max(t_sparse, 1e-9):.1f}x (of {total} frames)")
        ds.delete()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
