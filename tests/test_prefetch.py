"""Frame prefetch (sampd_plugin.core.frames.prefetch_frames) and the backends' split of encoding into prepare + encode:
order, errors and shutdown of the prefetch thread, and bit-identical encodings and tracks with and without it."""

import threading
import time
import traceback

import numpy as np
import pytest
import torch

from sampd_plugin.backends.base import PreparedImage
from sampd_plugin.core import frames as fr
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
from sampd_plugin.synthetic import SyntheticScene
from tests.test_byo_segmenter import BoxContrastSegmenter


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "sampd-prefetch" and t.is_alive()]


def images(n, h=24, w=32):
    rng = np.random.default_rng(n)
    return [(i + 1, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i in range(n)]


class Source:
    """A frame generator that records where it ran and whether (and on which thread) it was closed."""

    def __init__(self, frames, fail_at=None):
        self.frames, self.fail_at = frames, fail_at
        self.threads, self.closed_on, self.read = set(), None, 0

    def __iter__(self):
        return self._broken_reader()

    def _broken_reader(self):
        try:
            for fn, img in self.frames:
                self.threads.add(threading.current_thread().name)
                if fn == self.fail_at:
                    raise RuntimeError(f"cannot decode frame {fn}")
                self.read += 1
                yield fn, img
        finally:
            self.closed_on = threading.current_thread().name


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_prefetch_yields_every_frame_in_order_with_its_preparation(depth):
    frames = images(7)
    src = Source(frames)
    out = list(fr.prefetch_frames(src, lambda im: im.sum(), depth=depth))
    assert [fn for fn, _, _ in out] == list(range(1, 8))
    assert all(im is frames[i][1] and p == frames[i][1].sum() for i, (_, im, p) in enumerate(out))
    assert src.threads == ({"sampd-prefetch"} if depth else {threading.current_thread().name})
    assert src.closed_on is not None and not prefetch_threads()


def test_prefetch_depth_setting(monkeypatch):
    monkeypatch.delenv(fr.PREFETCH_ENV, raising=False)
    assert fr.prefetch_depth() == fr.DEFAULT_PREFETCH == 2
    assert fr.prefetch_depth(0) == 0
    monkeypatch.setenv(fr.PREFETCH_ENV, "0")
    assert fr.prefetch_depth() == 0 and fr.prefetch_depth(3) == 3
    monkeypatch.setenv(fr.PREFETCH_ENV, "two")
    with pytest.raises(ValueError, match=r"\$SAMPD_PREFETCH .*'two'"):
        fr.prefetch_depth()
    with pytest.raises(ValueError, match="prefetch must be"):
        fr.prefetch_depth(-1)


@pytest.mark.parametrize("depth", [0, 2])
def test_reader_error_surfaces_in_the_consumer_after_the_frames_before_it(depth):
    src = Source(images(6), fail_at=4)
    got = []
    with pytest.raises(RuntimeError, match="cannot decode frame 4") as info:
        for fn, _, _ in fr.prefetch_frames(src, depth=depth):
            got.append(fn)
    assert got == [1, 2, 3]
    # the original traceback (the reader's frame where it was raised) is kept
    assert "_broken_reader" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert not prefetch_threads()


def test_prepare_error_surfaces_in_the_consumer():
    frames = images(3)
    frames[1] = (2, frames[1][1][..., :2])  # not RGB
    seg = BoxContrastSegmenter()
    it = fr.prefetch_frames(frames, seg.prepare, depth=2)
    assert next(it)[0] == 1
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        next(it)
    assert not prefetch_threads()


def endless():
    rng = np.random.default_rng(0)
    fn = 0
    while True:
        fn += 1
        yield fn, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)


def test_closing_early_stops_the_thread_and_closes_the_source_on_it():
    src = Source(endless())
    it = fr.prefetch_frames(src, depth=2)
    assert next(it)[0] == 1
    deadline = time.time() + 10
    while src.read < 4 and time.time() < deadline:  # the queue fills up: the reader blocks on it
        time.sleep(0.01)
    time.sleep(0.2)
    assert src.read == 4 and len(prefetch_threads()) == 1  # 1 consumed + 2 queued + 1 waiting for a slot
    it.close()
    assert not prefetch_threads()
    assert src.closed_on == "sampd-prefetch"  # closed where it ran (e.g. eta's ffmpeg reader)
    # a generator dropped without close() is closed when collected
    it = fr.prefetch_frames(Source(endless()), depth=2)
    next(it)
    del it
    assert not prefetch_threads()


def test_closing_the_tracker_early_leaves_no_prefetch_thread():
    scene = SyntheticScene(seed=0, num_frames=50, num_objects=1, height=40, width=56)
    prompts = [ObjectPrompt(i, 1, mask=m) for i, m in scene.visible_masks(1).items()]
    it = SamPDTracker(BoxContrastSegmenter(), SamPDConfig.preset("box"), prefetch=2).track(scene.iter_frames(),
                                                                                            prompts)
    assert next(it).frame_number == 1 and len(prefetch_threads()) == 1
    it.close()
    assert not prefetch_threads()


# --- backends ----------------------------------------------------------------------------------------------------
def test_byo_backend_without_prepare_gets_the_image_and_tracks_the_same_with_and_without_prefetch():
    scene = SyntheticScene(seed=2, num_frames=5, num_objects=2, height=72, width=104)
    seg = BoxContrastSegmenter()
    img = scene.render(1)[0]
    prepared = seg.prepare(img)
    assert isinstance(prepared, PreparedImage) and prepared.data is img and prepared.image_size == (72, 104)
    assert torch.equal(seg.encode(prepared, 1).embedding, seg.encode(img, 1).embedding)
    with pytest.raises(ValueError, match="prepared by"):
        BoxContrastSegmenter().encode(prepared)
    prompts = [ObjectPrompt(i, 1, mask=m) for i, m in scene.visible_masks(1).items()]
    runs = [list(SamPDTracker(seg, prefetch=d).track(scene.iter_frames(), prompts)) for d in (0, 2)]
    assert [r.frame_number for r in runs[1]] == [1, 2, 3, 4, 5]
    for a, b in zip(*runs):
        for k in a.objects:
            assert np.array_equal(a.objects[k].mask, b.objects[k].mask) and a.objects[k].lost == b.objects[k].lost


def test_tiny_sam_encodings_and_tracks_are_identical_with_and_without_prefetch():
    from sampd_plugin.backends.tiny import tiny_backend

    backend = tiny_backend(seed=0, prompt_embed_dim=64, decoder_mlp_dim=256, decoder_num_heads=4)
    scene = SyntheticScene(seed=1, num_frames=3, num_objects=1, height=60, width=84)
    prompts = [ObjectPrompt(i, 1, box=None, mask=m) for i, m in scene.visible_masks(1).items()]
    direct = [backend.encode(img, fn).embedding for fn, img in scene.iter_frames()]
    recorded, where = [], set()
    encode = backend._encode

    def recording(prepared, frame_number):
        state = encode(prepared, frame_number)
        recorded.append(state.embedding)
        return state

    prepare = backend._prepare

    def watched(image):
        where.add(threading.current_thread().name)
        return prepare(image)

    backend._encode, backend._prepare = recording, watched
    runs = {}
    for depth in (2, 0):
        recorded.clear(), where.clear()
        runs[depth] = list(SamPDTracker(backend, SamPDConfig.preset("box"), prefetch=depth).track(
            scene.iter_frames(), prompts))
        assert len(recorded) == 3 and all(torch.equal(a, b) for a, b in zip(recorded, direct))
        assert where == ({"sampd-prefetch"} if depth else {threading.current_thread().name})
    for a, b in zip(runs[0], runs[2]):
        assert a.frame_number == b.frame_number
        for k in a.objects:
            assert np.array_equal(a.objects[k].mask, b.objects[k].mask) and a.objects[k].iou == b.objects[k].iou


def test_synthetic_backend_prepare_then_encode_equals_encode():
    from sampd_plugin.backends.synthetic import SyntheticSegmenter

    scene = SyntheticScene(seed=0, num_frames=2, num_objects=2, height=48, width=64)
    seg = SyntheticSegmenter(scene)
    img = scene.render(2)[0]
    a, b = seg.encode(seg.prepare(img), 2), seg.encode(img, 2)
    assert torch.equal(a.embedding, b.embedding) and a.input_size == b.input_size and a.image_size == (48, 64)
    with pytest.raises(ValueError, match="scene's frames are 48x64"):
        seg.prepare(np.zeros((10, 10, 3), np.uint8))
