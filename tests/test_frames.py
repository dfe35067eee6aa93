"""Frame streaming with eta's ffmpeg reader (sampd_plugin.core.frames)."""

import tracemalloc

import numpy as np
import pytest

from sampd_plugin.core.frames import frame_count, frame_size, iter_frames
from sampd_plugin.synthetic import SyntheticScene, write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    scene = SyntheticScene(seed=9, num_frames=24, num_objects=2, height=72, width=96)
    path = write_video(scene, str(tmp_path_factory.mktemp("video") / "v.mp4"), fps=12)
    return scene, path


def test_frame_size_and_count(video):
    _, path = video
    assert frame_size(path) == (96, 72)  # (width, height)
    assert frame_count(path) == 24


def test_iter_frames_all(video):
    scene, path = video
    got = list(iter_frames(path))
    assert [t for t, _ in got] == list(range(1, 25))
    for t, img in got:
        assert img.shape == (72, 96, 3) and img.dtype == np.uint8
        assert np.abs(img.astype(int) - scene.render(t)[0]).mean() < 4  # the right frame, 1-based
    img = got[0][1]
    img[0, 0] = 0  # a writable copy, not the reader's buffer


def test_iter_frames_ranges(video):
    _, path = video
    assert [t for t, _ in iter_frames(path, start=20)] == [20, 21, 22, 23, 24]
    assert [t for t, _ in iter_frames(path, start=3, stop=5)] == [3, 4, 5]
    assert [t for t, _ in iter_frames(path, start=22, stop=100)] == [22, 23, 24]
    assert list(iter_frames(path, start=30)) == []
    assert list(iter_frames(path, start=5, stop=4)) == []
    with pytest.raises(ValueError):
        list(iter_frames(path, start=0))


def test_iter_frames_stops_early_and_is_lazy(video):
    scene, path = video
    gen = iter_frames(path)
    t, img = next(gen)
    assert t == 1
    gen.close()  # closes ffmpeg without reading the rest
    first = next(iter_frames(path, 7))
    assert first[0] == 7 and np.abs(first[1].astype(int) - scene.render(7)[0]).mean() < 4


def test_memory_is_flat_in_video_length(tmp_path):
    scene = SyntheticScene(seed=1, num_frames=150, num_objects=1, height=64, width=64)
    path = write_video(scene, str(tmp_path / "long.mp4"))
    frame_bytes = 64 * 64 * 3
    tracemalloc.start()
    n = 0
    for _, img in iter_frames(path):
        n += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 150
    assert peak < 20 * frame_bytes + 256 * 1024  # a few frames in flight, not the video
