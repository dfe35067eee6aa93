"""Frame streaming from video files with eta's ffmpeg reader (the reader FiftyOne uses).

Frames are decoded one at a time through an ffmpeg pipe, so memory stays flat in the video's length. Frame numbers
are 1-based (FiftyOne's convention); images are ``(H, W, 3)`` uint8 RGB.

This module imports no FiftyOne (eta ships with it).
"""

from __future__ import annotations

import logging
from typing import Iterator, Optional, Tuple

import numpy as np

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
    """Number of frames the container reports (0 if unknown)."""
    return int(_stream_info(path).total_frame_count or 0)


def iter_frames(path: str, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """Yields ``(frame_number, (H, W, 3) uint8 RGB image)`` for frames ``start..stop`` (inclusive, 1-based) of a
    video, decoding lazily with ``eta.core.video.FFmpegVideoReader``.

    Args:
        path: a video file (or an ffmpeg image pattern such as ``/frames/%05d.png``)
        start: first frame number (>= 1)
        stop: last frame number, inclusive; ``None`` = to the end of the video

    Frames before ``start`` are decoded and dropped (ffmpeg reads sequentially). Stopping the iteration early
    closes the ffmpeg process. Each yielded image is a fresh array the caller may keep or modify.
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
    try:
        for img in reader:
            yield int(reader.frame_number), np.array(img, dtype=np.uint8, copy=True)
    finally:
        reader.close()
        eta_logger.setLevel(level)


def iter_frames_backward(path: str, last: int, first: int = 1, chunk: int = 128) -> Iterator[Tuple[int, np.ndarray]]:
    """Frames ``last, last-1, ..., first`` of a video, decoded forwards in chunks of ``chunk`` frames and yielded in
    reverse (memory: one chunk; decoding cost grows with the number of chunks as ffmpeg reads from the start)."""
    hi = int(last)
    while hi >= first:
        lo = max(int(first), hi - int(chunk) + 1)
        buf = list(iter_frames(path, start=lo, stop=hi))
        for item in reversed(buf):
            yield item
        hi = lo - 1

