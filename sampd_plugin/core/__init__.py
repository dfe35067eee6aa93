"""The paper (SAM-PD, Sec. III) and its metrics, with no FiftyOne: the config and its presets, the prompts, the
selection, the tracker, the quality flag, DAVIS J&F and UVO AP/AR, and frame reading.

Core modules import only each other, :mod:`sampd_plugin.errors` and the segmenter interface
:mod:`sampd_plugin.backends.base` (``tests/test_layering.py`` checks every module here). Importing this package
imports nothing.
"""
