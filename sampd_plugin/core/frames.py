"""Frame sources: an ordered stream of ``(frame_number, RGB image)`` from a video file or from image files.

:class:`FrameSource` is the one interface the tracking loop reads frames through; :class:`VideoFile` decodes a video
with eta's ffmpeg reader (the reader FiftyOne uses), one frame at a time through a pipe, so memory stays flat in the
video's length; :class:`ImageFiles` reads a sequence of image files (one file per frame, e.g. FiftyOne's DAVIS zoo
layout) exactly as they are on disk (:func:`read_image`). Frame numbers are 1-based (FiftyOne's convention; for
image files, the position in the sequence); images are ``(H, W, 3)`` uint8 RGB. :func:`prefetch_frames` reads and
preprocesses the next frames of any such stream on a background thread while the model works on the current one.

This module imports no FiftyOne (eta ships with it).
"""

from __future__ import annotations

import abc
import logging
import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from sampd_plugin.errors import TruncatedVideoError

_UNKNOWN_LENGTH = 2**31 - 1


def _stream_info(path: str):
    import eta.core.video as etav

    return etav.VideoStreamInfo.build_for(path)


def frame_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of the video's frames in pixels (eta's / FiftyOne's ``frame_width, frame_height``
    order)."""
    w, h = _stream_info(path).frame_size
    return int(w), int(h)


def frame_count(path: str) -> int:
    """Number of frames the container reports (0 if unknown: missing, zero or negative, as a streamed MKV reports
    ``duration -1 x fps``)."""
    return max(int(_stream_info(path).total_frame_count or 0), 0)


def iter_frames(path: str, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """Yields ``(frame_number, (H, W, 3) uint8 RGB image)`` for frames ``start..stop`` (inclusive, 1-based) of a
    video, decoding lazily with ``eta.core.video.FFmpegVideoReader``.

    Args:
        path: a video file (or an ffmpeg image pattern such as ``/frames/%05d.png``)
        start: first frame number (>= 1)
        stop: last frame number, inclusive; ``None`` = to the end of the video

    Frames before ``start`` are decoded and dropped (ffmpeg reads sequentially). Stopping the iteration early
    closes the ffmpeg process. Each yielded image is a fresh array the caller may keep or modify.

    Raises:
        TruncatedVideoError: the video ends before the last requested frame the container reports (a truncated or
            corrupt file), after the frames that did decode were yielded
    """
    import eta.core.video as etav

    if start < 1:
        raise ValueError(f"frame numbers are 1-based; got start={start}")
    if stop is not None and stop < start:
        return
    total = frame_count(path)
    end = min(stop, total) if (stop is not None and total > 0) else (stop or total)
    if end <= 0:  # unknown length: read until ffmpeg runs dry
        end = _UNKNOWN_LENGTH
    if start > end:
        return
    eta_logger = logging.getLogger(etav.__name__)
    level = eta_logger.level
    if end == _UNKNOWN_LENGTH or (stop is not None and total <= 0):
        eta_logger.setLevel(logging.ERROR)  # the reader warns when it hits the end of a video of unknown length
    reader = etav.FFmpegVideoReader(path, frames=f"{start}-{end}")
    last = start - 1
    try:
        eta_logger.addFilter(_quiet_empty_frame)
        for img in reader:
            last = int(reader.frame_number)
            yield last, np.array(img, dtype=np.uint8, copy=True)
    finally:
        reader.close()
        eta_logger.removeFilter(_quiet_empty_frame)
        eta_logger.setLevel(level)
    if end != _UNKNOWN_LENGTH and last < end:
        raise TruncatedVideoError(
            f"{path}: decoding stopped after frame {last} but the container reports {total} frames (truncated or "
            f"corrupt video; the last good frame is {last})"
        )


def _quiet_empty_frame(record) -> bool:
    """Drops eta's "Found empty frame ..." message: a short decode is reported as :class:`TruncatedVideoError`."""
    return "Found empty frame" not in record.getMessage()


def iter_frames_backward(path: str, last: int, first: int = 1, chunk: int = 128
                         ) -> Iterator[Tuple[int, np.ndarray]]:
    """Frames ``last, last-1, ..., first`` of a video, decoded forwards in chunks of ``chunk`` frames and yielded in
    reverse (memory: one chunk; decoding cost grows with the number of chunks as ffmpeg reads from the start)."""
    hi = int(last)
    while hi >= first:
        lo = max(int(first), hi - int(chunk) + 1)
        buf = list(iter_frames(path, start=lo, stop=hi))
        for item in reversed(buf):
            yield item
        hi = lo - 1


def read_image(path: str) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB pixels of an image file as stored (OpenCV's decoder, as ``eta.core.image.read``
    which FiftyOne uses; no EXIF rotation; grey images are expanded to three channels, an alpha channel is dropped).

    Raises:
        FileNotFoundError: the file does not exist
        ValueError: the file is not a readable 8-bit image
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file {path} does not exist")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise ValueError(f"{path} is not a readable image")
    if img.dtype != np.uint8:
        raise ValueError(f"{path} holds {img.dtype} pixels; 8-bit images are expected")
    if img.ndim == 2:
        img = img[..., None].repeat(3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


class FrameSource(abc.ABC):
    """An ordered sequence of frames numbered ``1..num_frames`` (``num_frames`` is ``None`` when unknown)."""

    num_frames: Optional[int] = None

    @abc.abstractmethod
    def iter_frames(self, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
        """Yields ``(frame_number, (H, W, 3) uint8 RGB)`` for frames ``start..stop`` (inclusive; ``stop=None``: to
        the end), lazily, one fresh array per frame."""

    @abc.abstractmethod
    def iter_frames_backward(self, last: int, first: int = 1) -> Iterator[Tuple[int, np.ndarray]]:
        """Yields frames ``last, last - 1, ..., first``."""


class VideoFile(FrameSource):
    """The frames of a video file (:func:`iter_frames`); backwards in chunks of ``chunk`` frames
    (:func:`iter_frames_backward`)."""

    def __init__(self, path: str, num_frames: Optional[int] = None, chunk: int = 128):
        self.path = path
        self.num_frames = num_frames
        self.chunk = int(chunk)

    def __repr__(self):
        return f"VideoFile({self.path!r})"

    def iter_frames(self, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
        return iter_frames(self.path, start, stop)

    def iter_frames_backward(self, last: int, first: int = 1) -> Iterator[Tuple[int, np.ndarray]]:
        return iter_frames_backward(self.path, last, first, self.chunk)


class ImageFiles(FrameSource):
    """One image file per frame: ``paths[i]`` is frame ``i + 1`` (:func:`read_image`)."""

    def __init__(self, paths: Sequence[str]):
        self.paths: List[str] = list(paths)
        self.num_frames = len(self.paths)

    def __repr__(self):
        return f"ImageFiles({self.num_frames} files)"

    def _read(self, fn: int) -> Tuple[int, np.ndarray]:
        return fn, read_image(self.paths[fn - 1])

    def iter_frames(self, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
        if start < 1:
            raise ValueError(f"frame numbers are 1-based; got start={start}")
        stop = self.num_frames if stop is None else min(int(stop), self.num_frames)
        return (self._read(fn) for fn in range(int(start), stop + 1))

    def iter_frames_backward(self, last: int, first: int = 1) -> Iterator[Tuple[int, np.ndarray]]:
        return (self._read(fn) for fn in range(min(int(last), self.num_frames), max(int(first), 1) - 1, -1))


# --- prefetch -----------------------------------------------------------------------------------------------------
PREFETCH_ENV = "SAMPD_PREFETCH"
#: frames read and prepared ahead of the consumer (queue size); ``0`` turns the prefetch thread off
DEFAULT_PREFETCH = 2


def prefetch_depth(depth: Optional[int] = None) -> int:
    """The prefetch queue size: ``depth`` when given, else ``$SAMPD_PREFETCH``, else :data:`DEFAULT_PREFETCH`;
    ``0`` = no prefetch thread.

    Raises:
        ValueError: not a non-negative integer (the message names the setting)
    """
    where, value = ("prefetch", depth) if depth is not None else (f"${PREFETCH_ENV}", os.environ.get(PREFETCH_ENV))
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_PREFETCH
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0 or isinstance(value, bool) or str(value).strip() != str(n):
        raise ValueError(f"{where} must be a non-negative integer number of frames (0: off), got {value!r}")
    return n


def prefetch_frames(frames: Iterable[Tuple[int, np.ndarray]], prepare: Optional[Callable[[np.ndarray], Any]] = None,
                    depth: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray, Any]]:
    """Yields ``(frame_number, image, prepare(image))`` for each ``(frame_number, image)`` of ``frames`` (e.g. a
    :meth:`FrameSource.iter_frames` iterator), in order, with the next ``depth`` frames read and prepared ahead on a
    daemon thread (``prepare``: e.g. a backend's
    :meth:`~sampd_plugin.backends.base.PromptableSegmenter.prepare`; ``None`` yields the image itself).

    Args:
        frames: the frame stream; iterated (and, when the consumer stops early, closed) on the prefetch thread
        prepare: per-frame preprocessing, called on the prefetch thread (it must be thread-safe)
        depth: queue size (:func:`prefetch_depth`: ``None`` -> ``$SAMPD_PREFETCH`` -> 2). ``0``: no thread; the
            same steps run in the consumer's thread, one frame at a time

    An exception raised while reading or preparing a frame is raised in the consumer at that frame's place in the
    stream (after the frames before it), with its original traceback. Closing the returned generator (``close()``,
    ``break`` out of a ``for`` loop and dropping it, garbage collection) stops the thread after the frame it is
    reading, closes ``frames`` on it (e.g. the ffmpeg reader) and joins it.
    """
    depth = prefetch_depth(depth)
    items = _prepared(frames, prepare)
    return items if depth == 0 else _prefetched(items, depth)


def _prepared(frames, prepare) -> Iterator[Tuple[int, np.ndarray, Any]]:
    """The per-frame steps of :func:`prefetch_frames`, whichever thread runs them; closes ``frames`` when done."""
    it = iter(frames)
    try:
        for frame_number, image in it:
            yield frame_number, image, (image if prepare is None else prepare(image))
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """``items`` run on a daemon thread, ``depth`` ahead of the consumer (see :func:`prefetch_frames`)."""
    slots: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:  # False once the consumer has gone
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def run():
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((False, e))
        finally:
            items.close()  # here, on the thread that runs it (a generator cannot be closed from another thread)

    thread = threading.Thread(target=run, name="sampd-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if ok:
                yield item
            elif item is None:
                return
            else:
                raise item
    finally:
        stop.set()
        thread.join()
