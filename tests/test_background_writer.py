"""store.BackgroundWriter: order, bounded queue, overlap, error propagation, flush semantics (a recording writer)."""
import threading
import time

import pytest

pytest.importorskip("fiftyone")

from sampd_plugin.fo.store import BackgroundWriter  # noqa: E402


class Recorder:
    batch_frames = 4

    def __init__(self, fail_at=None, delay=0.0, gate=None):
        self.added, self.flushes, self.frames_written, self.calls = [], 0, 0, 0
        self.fail_at, self.delay, self.gate = fail_at, delay, gate

    def add(self, seq, frame_number, label):
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        if frame_number == self.fail_at:
            raise ValueError(f"cannot write frame {frame_number}")
        self.added.append((seq, frame_number, label))

    @property
    def pending(self):
        return len(self.added) - self.frames_written

    def flush(self):
        self.flushes += 1
        self.frames_written = len(self.added)


def test_order_flush_and_thread_lifetime():
    rec = Recorder()
    w = BackgroundWriter(rec, idle_flush_frames=0)
    w.flush()  # nothing added: flushes the writer directly
    assert rec.flushes == 1 and w._thread is None
    for fn in range(1, 11):
        w.add("seq", fn, f"label{fn}")
    w.flush()
    assert [a[1] for a in rec.added] == list(range(1, 11)) and rec.flushes == 2 and w.frames_written == 10
    assert w._thread is None
    w.add("seq", 11, "x")  # a new thread after a flush
    w.flush()
    assert rec.added[-1] == ("seq", 11, "x") and rec.flushes == 3


def test_adds_return_before_the_writes():
    rec = Recorder(delay=0.05)
    w = BackgroundWriter(rec, max_pending=10)
    t = time.perf_counter()
    for fn in range(8):
        w.add("s", fn, None)
    queued = time.perf_counter() - t
    w.flush()
    assert queued < 0.2 < time.perf_counter() - t  # 8 x 50 ms written in the background
    assert len(rec.added) == 8


def test_queue_is_bounded():
    gate = threading.Event()
    w = BackgroundWriter(Recorder(gate=gate), max_pending=2)
    done = []
    producer = threading.Thread(target=lambda: [w.add("s", i, None) for i in range(5)] and done.append(1))
    producer.start()
    producer.join(timeout=0.5)
    assert producer.is_alive() and w._queue.qsize() == 2  # 1 being written, 2 waiting, the 4th add blocks
    gate.set()
    producer.join(timeout=5)
    assert done == [1]
    w.flush()


def test_errors_propagate_and_stop_writing():
    rec = Recorder(fail_at=3)
    w = BackgroundWriter(rec, max_pending=100)
    for fn in range(1, 6):
        w.add("s", fn, None)
    with pytest.raises(ValueError, match="frame 3"):
        w.flush()
    assert [a[1] for a in rec.added] == [1, 2] and rec.flushes == 0  # nothing after the error
    with pytest.raises(ValueError, match="frame 3"):
        w.add("s", 6, None)
    with pytest.raises(ValueError, match="frame 3"):
        w.flush()
    with pytest.raises(ValueError):
        BackgroundWriter(rec, max_pending=-1)


def test_idle_flush_writes_early():
    rec = Recorder()
    w = BackgroundWriter(rec, idle_flush_frames=3)
    for fn in range(7):
        w.add("s", fn, None)
        time.sleep(0.05)  # a slow producer: the queue runs empty after each add
    time.sleep(0.2)
    assert rec.flushes >= 1 and 3 <= rec.frames_written <= 6  # written early, in the background (3 and 6 frames)
    w.flush()
    assert rec.frames_written == 7
