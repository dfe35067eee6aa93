"""The SAM-PD operators, one per module; ``OPERATORS`` is what the plugin's ``register(p)`` registers.

Operators are thin: they build a form (``forms``) and a :class:`sampd_plugin.TrackRequest` of it, validate it
through the SDK's planning functions, and call the public SDK (``import sampd_plugin as sp``) to do the work; what
the forms need besides (targets, field discovery, choices, views) comes from the facade :mod:`sampd_plugin.fo.ui`.
They write nothing themselves.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("sampd_plugin") is None:  # a plugin checkout that is not pip-installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from .auto_track_objects import AutoTrackObjects  # noqa: E402
from .browse_tracking_failures import BrowseTrackingFailures  # noqa: E402
from .evaluate_tracking import EvaluateTracking  # noqa: E402
from .plot_tracking import PlotTracking  # noqa: E402
from .repropagate_from_frame import RepropagateFromFrame  # noqa: E402
from .track_objects import TrackObjects  # noqa: E402

OPERATORS = (TrackObjects, AutoTrackObjects, RepropagateFromFrame, EvaluateTracking, BrowseTrackingFailures,
             PlotTracking)
