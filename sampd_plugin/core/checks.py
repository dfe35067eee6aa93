"""Type and range checks of settings and arguments, in one place: :class:`~sampd_plugin.core.config.SamPDConfig`,
:class:`~sampd_plugin.fo.request.TrackRequest` and the other public functions (repropagate, evaluate_jf, queued
operations, the benchmark CLI) call these before anything is built or written.

Every check raises :class:`~sampd_plugin.errors.SampdInputError` (a ``ValueError``) whose message names the setting
and the value it got, and whose ``field`` is the setting. Numbers are Python / numpy numbers, never strings (``"0.5"`` is refused, not guessed at), never
``bool`` (``True`` is not a count) and always finite; counts are integers.

This module imports no FiftyOne and no torch.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Optional

from sampd_plugin.errors import SampdInputError

#: device strings accepted everywhere (whether this machine has the device is checked where the model is built)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _what(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(name: str, value, low: Optional[int] = None, high: Optional[int] = None,
            allow_none: bool = False) -> Optional[int]:
    """``value`` as an ``int`` after checking that it is an integer (not a bool, a float or a string) in
    ``[low, high]``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SampdInputError(f"{name} must be an integer, got {_what(value)}", field=name)
    value = int(value)
    _in_range(name, value, low, high)
    return value


def number(name: str, value, low: Optional[float] = None, high: Optional[float] = None,
           low_open: bool = False, allow_none: bool = False) -> Optional[float]:
    """``value`` as a ``float`` after checking that it is a finite real number (not a bool or a string) in
    ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SampdInputError(f"{name} must be a number, got {_what(value)}", field=name)
    value = float(value)
    if not math.isfinite(value):
        raise SampdInputError(f"{name} must be a finite number, got {value!r}", field=name)
    if low_open and low is not None and value <= low:
        raise SampdInputError(f"{name} must be > {low}, got {value!r}", field=name)
    _in_range(name, value, low, high)
    return value


def flag(name: str, value) -> bool:
    """``value`` after checking that it is a ``bool``."""
    if not isinstance(value, bool):
        raise SampdInputError(f"{name} must be True or False, got {_what(value)}", field=name)
    return value


def choice(name: str, value, choices):
    """``value`` after checking that it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise SampdInputError(f"{name} must be one of {list(choices)}, got {value!r}", field=name)
    return value


def device(value, name: str = "device") -> Optional[str]:
    """A device string (``None``, ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``) after checking its
    syntax; whether this machine has it is checked where the model is built (a queued job names the workers'
    device)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not DEVICE_PATTERN.match(value.strip().lower()):
        raise SampdInputError(f"unknown {name} {value!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", field=name)
    return value.strip().lower()


def _in_range(name, value, low, high):
    if low is not None and value < low:
        raise SampdInputError(f"{name} must be >= {low}, got {value!r}", field=name)
    if high is not None and value > high:
        raise SampdInputError(f"{name} must be <= {high}, got {value!r}", field=name)
