"""The library's exceptions.

- :class:`SampdInputError`: the input is invalid (the message names the sample, frame and field); it is raised
  while a job is planned, before anything is written.
"""


class SampdInputError(ValueError):
    """Invalid input (sample, frame, field named in the message); nothing was written."""
