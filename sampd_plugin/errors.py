"""The library's exceptions.

- :class:`SampdInputError`: the input is invalid (the message names the sequence, frame and field); it is raised
  while a job is planned, before anything is written.
- :class:`SampdRunError`: tracking one sequence failed at run time (a truncated video, a run that lost ownership of
  the sequence, a sequence deleted mid-run, ...); the sequence's run marker is left unfinished (``done=False`` with
  the error), so a later run redoes it, and the job's other sequences are still tracked.
"""


class SampdInputError(ValueError):
    """Invalid input (sample, frame, field named in the message); nothing was written.

    Attributes:
        field: the setting at fault (a :class:`~sampd_plugin.fo.request.TrackRequest` attribute such as
            ``"label_field"`` or ``"model"``, the name of the form input a form flags), or ``None``
    """

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class SampdRunError(RuntimeError):
    """A sequence could not be tracked to its end (named in the message); it is not marked finished.

    Attributes:
        summary: when raised at the end of a job, the job's summary dict (what was tracked, skipped, failed)
    """

    def __init__(self, message, summary=None):
        super().__init__(message)
        self.summary = summary


class TruncatedVideoError(SampdRunError):
    """A video decoded to fewer frames than its container reports."""


class OwnershipLostError(SampdRunError):
    """Another run took over the sequence (this run's heartbeat was older than the stale limit): stop writing."""
