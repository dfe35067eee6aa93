"""Per-frame cost of SAM-PD against the image encoder (paper Table IV: ViT-H encoder 422 ms, 18 prompts 169 ms on an
RTX 3090; our target: overhead below 10 % of the encoder).

Runs the production tracker on a generated video and splits each frame's wall time into the image encoder and
everything SAM-PD adds (prompt grid, decoder calls, Eq. 2 selection, refinement, upsampling). Prints ratios
measured in this one run. Needs no FiftyOne: runnable on a bare GPU machine with torch + segment-anything.

    python benchmarks/speed.py --model tiny                       # random-init tiny SAM, CPU
    python benchmarks/speed.py --model vit_b --random-weights     # the real ViT-B architecture, random weights
    python benchmarks/speed.py --model vit_h --checkpoint sam_vit_h_4b8939.pth --device cuda --half
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sampd_plugin.config import SamPDConfig  # noqa: E402
from sampd_plugin.synthetic import SyntheticScene  # noqa: E402
from sampd_plugin.tracker import ObjectPrompt, SamPDTracker  # noqa: E402


def load_backend(args):
    if args.model == "tiny":
        from sampd_plugin.backends.tiny import tiny_backend

        return tiny_backend(seed=0, device=args.device or "cpu")
    if args.random_weights:  # timing does not depend on the weights: the real architecture, randomly initialised
        from segment_anything import sam_model_registry

        from sampd_plugin.backends.sam import SamBackend

        return SamBackend(model=sam_model_registry[args.model](checkpoint=None), model_type=args.model,
                          device=args.device, half=args.half)
    from sampd_plugin.backends.sam import load_sam

    return load_sam(args.model, checkpoint=args.checkpoint, device=args.device, half=args.half)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_run(backend, config, scene, num_objects):
    """Returns per-frame (encoder_ms, total_ms, decode_calls, prompts) for frames 2.. of one tracking run."""
    encode = backend.encode
    enc_times = {}

    def timed_encode(image, frame_number=None):
        _sync(backend.device)
        t0 = time.perf_counter()
        state = encode(image, frame_number)
        _sync(backend.device)
        enc_times[frame_number] = (time.perf_counter() - t0) * 1e3
        return state

    backend.encode = timed_encode
    try:
        prompts = [
            ObjectPrompt(object_id=i, frame_number=1, mask=m)
            for i, m in sorted(scene.visible_masks(1).items())[:num_objects]
        ]
        frames = list(scene.iter_frames())  # rendered up front: rendering is not the tracker's cost
        rows = []
        _sync(backend.device)
        t0 = time.perf_counter()
        for r in SamPDTracker(backend, config).track(iter(frames), prompts):
            _sync(backend.device)
            t1 = time.perf_counter()
            if r.frame_number > 1:
                rows.append((enc_times[r.frame_number], (t1 - t0) * 1e3, r.decode_calls, r.decoded_prompts))
            t0 = t1
        return rows
    finally:
        backend.encode = encode


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="tiny | vit_b | vit_l | vit_h")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--half", action="store_true")
    p.add_argument("--random-weights", action="store_true",
                   help="build --model's real architecture with random weights (no checkpoint; timings only)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--objects", type=int, nargs="+", default=[1, 3])
    p.add_argument("--batch-size", type=int, default=None, help="decoder batch (0 = unlimited; default: backend's)")
    p.add_argument("--presets", nargs="+", default=["box", "full"])
    args = p.parse_args(argv)

    torch.manual_seed(0)
    backend = load_backend(args)
    weights = " (random weights)" if args.random_weights or args.model == "tiny" else ""
    print(f"backend: {args.model}{weights} on {backend.device}; preferred decode batch: {backend.preferred_batch_size}")
    scene = SyntheticScene(seed=0, num_frames=args.frames, num_objects=max(args.objects), height=480, width=854)
    print(f"{'preset':<10} {'objs':>4} {'encoder ms':>10} {'SAM-PD ms':>10} {'overhead':>9} {'calls':>6} {'prompts':>8}")
    for name in args.presets:
        config = SamPDConfig.preset(name, decode_batch_size=args.batch_size)
        for n in args.objects:
            time_run(backend, config, SyntheticScene(seed=0, num_frames=2, num_objects=n, height=480, width=854), n)
            rows = time_run(backend, config, scene, n)
            enc = statistics.median(r[0] for r in rows)
            extra = statistics.median(r[1] - r[0] for r in rows)
            calls = np.mean([r[2] for r in rows])
            prompts = np.mean([r[3] for r in rows])
            print(f"{name:<10} {n:>4} {enc:>10.1f} {extra:>10.1f} {extra / enc:>8.1%} {calls:>6.1f} {prompts:>8.0f}")
    print("paper (ViT-H, RTX 3090): encoder 422 ms, 18-prompt stage 169 ms = 40.0 % overhead; target < 10 %")


if __name__ == "__main__":
    main()
