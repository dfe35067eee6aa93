"""Ownership of a sequence by one run: never two writers, nothing half-done marked done.

Every tracking run (an SDK call, a delegated operation) has a unique ``owner`` id. Before it clears or writes a
sequence's labels it *claims* the sequence with an atomic compare-and-set on the run marker of the sequence's head
sample (:meth:`Claim.acquire`): the claim succeeds only if the marker is still the one the run read and that marker
allows it (see :func:`marker_state`). While it tracks, the owner refreshes a ``heartbeat`` timestamp (at most every
``heartbeat_seconds``, and before every bulk write) with a compare-and-set on its own ``owner`` id; if another run
took the sequence over meanwhile, the heartbeat fails and the run stops writing (:class:`OwnershipLostError`). Only
the owner writes the final marker (:meth:`Claim.finish`), after the caller checked that every frame has a label;
a failing run releases its claim with the error (:meth:`Claim.fail`).

A claim may be taken over when its owner is presumed dead: its heartbeat is older than ``stale_seconds`` (default
10 minutes), or it ran on this host and its process no longer exists. A finished sequence is re-claimed only by a
run that overwrites.

This module imports no FiftyOne (markers are plain dicts; the atomic updates go through
:meth:`sampd_plugin.fo.sources.Layout.update_head`).
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import uuid
from typing import Optional, Tuple

from sampd_plugin.errors import OwnershipLostError

#: a claim whose heartbeat is older than this (seconds) is stale: its run is presumed dead and may be taken over
DEFAULT_STALE_SECONDS = 600
#: the owner refreshes its heartbeat at most this often (seconds), and before every bulk write
HEARTBEAT_SECONDS = 30

#: marker states (:func:`marker_state`)
STATES = ("not started", "done", "running", "stale", "dead", "failed", "unfinished")


def utcnow() -> datetime.datetime:
    """Now, as a naive UTC datetime (what MongoDB stores and returns)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def new_owner() -> str:
    """A unique id for one run."""
    return uuid.uuid4().hex


def this_worker() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_gone(worker: Optional[str]) -> bool:
    """Whether ``host:pid`` names a process of THIS host that no longer exists."""
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by another user
        return False
    return False


def heartbeat_age(marker: Optional[dict], now: Optional[datetime.datetime] = None) -> Optional[float]:
    """Seconds since the marker's heartbeat (``None`` without one)."""
    beat = (marker or {}).get("heartbeat")
    if not isinstance(beat, datetime.datetime):
        return None
    return ((now or utcnow()) - beat.replace(tzinfo=None)).total_seconds()


def marker_state(marker: Optional[dict], stale_seconds: float = DEFAULT_STALE_SECONDS,
                 now: Optional[datetime.datetime] = None) -> Tuple[str, str]:
    """``(state, message)`` of a run marker, one of :data:`STATES`:

    - ``not started``: no marker;
    - ``done``: the run finished the sequence;
    - ``running``: an owner holds it and heart-beat less than ``stale_seconds`` ago;
    - ``stale``: an owner holds it but its heartbeat is older (its worker presumed dead: may be taken over);
    - ``dead``: its owner ran on this host and the process no longer exists (may be taken over);
    - ``failed``: the run stopped with an error and released the sequence;
    - ``unfinished``: started by a run without ownership records (interrupted; may be taken over).
    """
    if not marker:
        return "not started", "not started"
    if marker.get("done"):
        return "done", f"done ({marker.get('frames')} frames)"
    if marker.get("owner") is None:
        if marker.get("error"):
            return "failed", f"failed: {marker['error']}"
        return "unfinished", "unfinished (no running owner)"
    where = f"{marker.get('worker') or '?'}"
    if marker.get("operation"):
        where += f", delegated operation {marker['operation']}"
    if _pid_gone(marker.get("worker")):
        return "dead", f"dead: its process {where} no longer exists"
    age = heartbeat_age(marker, now)
    if age is None or age > stale_seconds:
        ago = "never" if age is None else f"{age / 60:.0f} min ago" if age >= 120 else f"{age:.0f} s ago"
        return "stale", f"stale, last heartbeat {ago} ({where})"
    return "running", f"running on {where}, last heartbeat {age:.0f} s ago"


def claimable(marker: Optional[dict], overwrite: bool, stale_seconds: float = DEFAULT_STALE_SECONDS,
              now: Optional[datetime.datetime] = None) -> bool:
    """Whether a run may claim a sequence whose marker is ``marker``: unless another owner is alive (``running``),
    and a finished sequence only with ``overwrite``."""
    state, _ = marker_state(marker, stale_seconds, now)
    if state == "done":
        return bool(overwrite)
    return state != "running"


class Claim:
    """One run's ownership of one sequence (see the module docstring).

    Args:
        layout: the :class:`~sampd_plugin.fo.sources.Layout` of the sequence
        field: the marker field (``<label_field>_track``)
        seq: the :class:`~sampd_plugin.fo.sources.SampleSequence`
        marker: the marker this run wrote when it claimed the sequence
        heartbeat_seconds: minimum seconds between heartbeats (bulk writes always beat first)
    """

    def __init__(self, layout, field: str, seq, marker: dict, heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self.layout = layout
        self.field = field
        self.seq = seq
        self.marker = dict(marker)
        self.owner = marker["owner"]
        self.heartbeat_seconds = heartbeat_seconds
        self._last_beat = time.monotonic()

    @classmethod
    def acquire(cls, layout, field: str, seq, marker: dict, overwrite: bool,
                stale_seconds: float = DEFAULT_STALE_SECONDS, heartbeat_seconds: float = HEARTBEAT_SECONDS
                ) -> Tuple[Optional["Claim"], Optional[dict]]:
        """Claims ``seq`` for the run whose new marker is ``marker`` (it must hold ``owner``).

        Returns ``(claim, None)``, or ``(None, current marker)`` when another live run holds the sequence (or it is
        finished and ``overwrite`` is false). The claim is a compare-and-set on the marker as read: of two runs
        racing for one sequence, exactly one wins.
        """
        for _ in range(5):  # the marker changed between the read and the compare-and-set: read again
            current = layout.read_head(seq, field)
            if not claimable(current, overwrite, stale_seconds):
                return None, current
            marker = dict(marker, heartbeat=utcnow())
            if current is None:
                condition = {"$or": [{field: None}, {field: {"$exists": False}}]}
            else:
                condition = {f"{field}.owner": current.get("owner"), f"{field}.heartbeat": current.get("heartbeat"),
                             f"{field}.done": current.get("done")}
            if layout.update_head(seq, condition, {field: marker}):
                return cls(layout, field, seq, marker, heartbeat_seconds), None
        return None, layout.read_head(seq, field)

    def beat(self, force: bool = False, **progress):
        """Refreshes the heartbeat (at most every ``heartbeat_seconds`` unless ``force``), with optional progress
        values (``frames``, ``last_frame``); raises :class:`OwnershipLostError` if another run took over."""
        if not force and time.monotonic() - self._last_beat < self.heartbeat_seconds:
            return
        values = dict(heartbeat=utcnow(), **progress)
        self._update(values, "refresh its heartbeat")
        self._last_beat = time.monotonic()

    def finish(self, **stats):
        """Marks the sequence done (``done=True`` and ``stats``), as its owner; the caller has checked that every
        frame was written."""
        self._update(dict(done=True, error=None, heartbeat=utcnow(), **stats), "finish")

    def fail(self, error: str):
        """Releases the claim with ``error`` (``done=False``, no owner): the next run redoes the sequence. A no-op
        when this run is no longer the owner."""
        self.release(done=False, error=error)

    def release(self, done: bool, error: Optional[str] = None, **values):
        """Releases the claim (no owner) leaving ``done`` and ``error`` (and ``values``) in the marker; a no-op when
        this run is no longer the owner."""
        try:
            self._update(dict(values, done=bool(done), owner=None, heartbeat=utcnow(),
                              error=None if error is None else str(error)[:2000]), "release")
        except OwnershipLostError:
            pass

    def _update(self, values: dict, what: str):
        update = {f"{self.field}.{k}": v for k, v in values.items()}
        if not self.layout.update_head(self.seq, {f"{self.field}.owner": self.owner}, update):
            current = self.layout.read_head(self.seq, self.field)
            _, message = marker_state(current)
            raise OwnershipLostError(
                f"{self.seq.name}: this run ({self.marker.get('worker')}) could not {what}: the sequence was taken "
                f"over by another run ({message}); it stops writing it"
            )
        self.marker.update(values)
