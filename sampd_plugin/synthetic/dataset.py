"""Synthetic scenes on disk and in FiftyOne: H.264 videos written through ffmpeg, and video datasets with exact
ground truth (:func:`make_dataset`) whose samples remember their scene (:func:`dataset_scene`).

FiftyOne is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from typing import Dict, Optional

import numpy as np

from sampd_plugin.synthetic.scene import SCENE_FIELD, SyntheticScene

logger = logging.getLogger(__name__)


def write_video(scene: SyntheticScene, path: str, fps: float = 24.0, crf: int = 12, lossless: bool = False) -> str:
    """Streams the scene's frames to an H.264 mp4 through an ffmpeg pipe (constant memory).

    Args:
        scene: the scene
        path: output ``.mp4`` path (parent directories are created, an existing file is overwritten)
        fps: frame rate
        crf: x264 constant rate factor (lower = higher quality; 12 is visually lossless)
        lossless: exact RGB (``libx264rgb -qp 0``): decoding gives back the rendered pixels bit for bit (tests that
            compare a video with the same frames as images); browsers may not play it

    Returns:
        ``path``
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    h, w = scene.height, scene.width
    tmp = f"{path}.{os.getpid()}.part"
    if lossless:
        codec = ["-c:v", "libx264rgb", "-preset", "medium", "-qp", "0", "-pix_fmt", "rgb24"]
    else:
        # yuv420p (what browsers, hence the FiftyOne App, play) needs even sides; odd sides keep their exact size in
        # yuv444p instead
        pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
        if pix_fmt != "yuv420p":
            logger.warning("%dx%d has an odd side: writing %s as yuv444p, which browsers may not play", w, h, path)
        codec = ["-c:v", "libx264", "-preset", "medium", "-crf", str(int(crf)), "-pix_fmt", pix_fmt]
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
        *codec, "-movflags", "+faststart", "-f", "mp4", tmp,
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _, img in scene.iter_frames():
            proc.stdin.write(np.ascontiguousarray(img).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RuntimeError(f"ffmpeg failed writing {path}: {err.strip()}")
    os.replace(tmp, path)  # readers of an existing file never see a partial one
    return path


def _default_output_dir(num_frames, num_objects, height, width, start_frames, object_size=1.0) -> str:
    import fiftyone as fo

    tag = f"{num_frames}f-{num_objects}o-{height}x{width}"
    if start_frames:
        tag += "-s" + "_".join(f"{k}at{v}" for k, v in sorted(start_frames.items()))
    if object_size != 1.0:
        tag += f"-size{object_size:g}"
    return os.path.join(fo.config.default_dataset_dir, "sampd-synthetic", tag)


def _new_dataset(name: Optional[str], overwrite: bool, persistent: bool, info: dict):
    import fiftyone as fo

    if name is not None and fo.dataset_exists(name):
        if not overwrite:
            raise ValueError(f"dataset {name!r} exists; pass overwrite=True to replace it")
        fo.delete_dataset(name)
    dataset = fo.Dataset(name if name is not None else f"sampd-synthetic-{uuid.uuid4().hex[:12]}")
    dataset.persistent = persistent
    dataset.tags = ["synthetic"]
    dataset.info["synthetic"] = dict(generator="sampd_plugin.synthetic", **info)
    dataset.save()
    return dataset


def make_dataset(
    name: Optional[str] = None,
    num_videos: int = 2,
    num_frames: int = 30,
    num_objects: int = 3,
    height: int = 480,
    width: int = 854,
    seed: int = 0,
    output_dir: Optional[str] = None,
    start_frames: Optional[Dict[int, int]] = None,
    fps: float = 24.0,
    overwrite: bool = False,
    persistent: bool = False,
    lossless: bool = False,
    object_size: float = 1.0,
):
    """A FiftyOne video dataset of synthetic scenes with exact ground truth.

    Video ``i`` is ``SyntheticScene(seed + i, ...)`` written to ``<output_dir>/synthetic-<seed + i>.mp4``
    (default ``output_dir``: ``<fo.config.default_dataset_dir>/sampd-synthetic/<settings>``). Each sample has:

    - ``metadata``: computed ``VideoMetadata``;
    - ``synthetic``: the scene's :attr:`SyntheticScene.params` (rebuild it with :func:`dataset_scene`);
    - tag ``"synthetic"``;
    - ``frames.ground_truth``: ``fo.Detections`` on every frame, one ``fo.Detection`` per *visible* object:
      ``label`` = its shape, ``index`` = its object id, ``bounding_box`` = relative ``[x, y, w, h]`` of the
      visible mask's tight pixel box, ``mask`` = the visible mask cropped to that box (FiftyOne's convention).
      Frame 1 (or an object's first visible frame) carries the prompts.

    Labels are written in bulk (one ``set_values`` call per video and chunk of 256 frames).

    Args:
        name: dataset name; ``None`` makes a fresh, uniquely named ``sampd-synthetic-...`` dataset
        overwrite: delete an existing dataset called ``name`` first (else a ``ValueError`` is raised)
        persistent: make the dataset persistent
        lossless: write exact-RGB videos (:func:`write_video`) whose decoded frames are the rendered pixels
        object_size: scales the objects (:class:`SyntheticScene`; many objects want smaller ones)

    Returns:
        the ``fo.Dataset``
    """
    import fiftyone as fo

    from sampd_plugin.fo.labels import xyxy_to_relative

    start_frames = {int(k): int(v) for k, v in (start_frames or {}).items()}
    dataset = _new_dataset(name, overwrite, persistent, dict(num_videos=num_videos, seed=seed))
    if output_dir is None:
        output_dir = _default_output_dir(num_frames, num_objects, height, width, start_frames, object_size)

    scenes = [SyntheticScene(seed + i, num_frames, num_objects, height, width, start_frames, object_size=object_size)
              for i in range(num_videos)]
    samples = []
    for scene in scenes:
        path = write_video(scene, os.path.join(output_dir, f"synthetic-{scene.seed}{'-rgb' if lossless else ''}.mp4"),
                           fps=fps, lossless=lossless)
        samples.append(fo.Sample(filepath=os.path.abspath(path), tags=["synthetic"], **{SCENE_FIELD: scene.params}))
    ids = dataset.add_samples(samples)
    dataset.compute_metadata()

    chunk = 256
    for sample_id, scene in zip(ids, scenes):
        labels = scene.labels
        for lo in range(1, scene.num_frames + 1, chunk):
            frames = {}
            for t in range(lo, min(lo + chunk, scene.num_frames + 1)):
                dets = []
                for oid, (box, mask) in sorted(scene.ground_truth(t).items()):
                    x0, y0, x1, y1 = (int(v) for v in box)
                    dets.append(
                        fo.Detection(
                            label=labels[oid],
                            bounding_box=xyxy_to_relative(box, (scene.height, scene.width)),
                            mask=mask[y0:y1, x0:x1].copy(),
                            index=oid,
                        )
                    )
                frames[t] = fo.Detections(detections=dets)
            dataset.set_values("frames.ground_truth", {sample_id: frames}, key_field="id")
    return dataset


def make_image_dataset(
    name: Optional[str] = None,
    num_sequences: int = 2,
    num_frames: int = 30,
    num_objects: int = 3,
    height: int = 480,
    width: int = 854,
    seed: int = 0,
    output_dir: Optional[str] = None,
    image_format: str = "jpg",
    start_frames: Optional[Dict[int, int]] = None,
    overwrite: bool = False,
    persistent: bool = False,
):
    """An image dataset of synthetic sequences in exactly the schema of FiftyOne's DAVIS 2017 zoo dataset
    (``voxel51/davis-2017``, ``format="image"``): one image sample per frame with ``filepath`` =
    ``<output_dir>/<sequence>/<frame:05d>.<image_format>``, ``sequence_id`` = the sequence name (also in ``tags``,
    with ``"synthetic"``), ``frame_number`` = the file stem as a string (``"00000"`` for the first frame),
    ``ground_truth`` = :func:`~sampd_plugin.datasets.fiftyone_io.zoo_detections` (``index`` from 0), plus
    ``synthetic`` = the scene parameters (so the synthetic segmenter can segment it). Sequence ``i`` is
    ``SyntheticScene(seed + i, ...)`` named ``synthetic-<seed + i>``; scene frame ``t`` (1-based) is
    ``frame_number = f"{t - 1:05d}"``.

    ``image_format`` ``"jpg"`` (OpenCV's default quality 95, as DAVIS ships JPEGs) or ``"png"`` (lossless: the files
    hold exactly the rendered pixels).
    """
    import cv2
    import fiftyone as fo

    from sampd_plugin.datasets.fiftyone_io import zoo_detections

    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    start_frames = {int(k): int(v) for k, v in (start_frames or {}).items()}
    dataset = _new_dataset(name, overwrite, persistent, dict(num_sequences=num_sequences, seed=seed,
                                                             layout="image sequences (DAVIS zoo schema)"))
    if output_dir is None:
        output_dir = os.path.join(_default_output_dir(num_frames, num_objects, height, width, start_frames),
                                  f"images-{image_format}")
    samples = []
    for i in range(num_sequences):
        scene = SyntheticScene(seed + i, num_frames, num_objects, height, width, start_frames)
        seq = f"synthetic-{scene.seed}"
        folder = os.path.join(output_dir, seq)
        os.makedirs(folder, exist_ok=True)
        for t, img in scene.iter_frames():
            stem = f"{t - 1:05d}"
            path = os.path.abspath(os.path.join(folder, f"{stem}.{image_format}"))
            tmp = f"{path}.{os.getpid()}.part.{image_format}"
            if not cv2.imwrite(tmp, img[..., ::-1]):
                raise RuntimeError(f"cannot write {path}")
            os.replace(tmp, path)
            samples.append(fo.Sample(filepath=path, tags=["synthetic", seq], sequence_id=seq, frame_number=stem,
                                     ground_truth=zoo_detections(scene.visible_masks(t), seq),
                                     **{SCENE_FIELD: scene.params}))
    dataset.add_samples(samples)
    dataset.compute_metadata()
    return dataset


def dataset_scene(sample) -> SyntheticScene:
    """The :class:`SyntheticScene` of a sample made by :func:`make_dataset` (from its ``synthetic`` field)."""
    try:
        params = sample[SCENE_FIELD]
    except KeyError:
        params = None
    if not params:
        raise ValueError(f"sample {getattr(sample, 'id', sample)!r} has no 'synthetic' scene parameters")
    return SyntheticScene.from_params(params)
