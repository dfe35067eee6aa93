"""DAVIS 2017, YouTube-VOS 2018 and UVO 1.0 in their official folder layouts.

=======================  ================================================================================
``labelmaps``            indexed-PNG label maps (read / write, DAVIS palette) and THE overlap rule
                         (:func:`~sampd_plugin.datasets.labelmaps.resolve_overlaps`)
``base``                 :class:`VideoSequence`, what every reader returns (frames, objects, annotations)
``davis``                ``read_davis``; prediction folders as the davis2017-evaluation toolkit reads them
``youtube_vos``          ``read_youtube_vos``; the evaluation server's submission folder and zip
``uvo``                  ``read_uvo`` (YouTube-VIS-style JSON, RLE tracks); VIS results JSON
``fiftyone_io``          FiftyOne import / export: ``load_davis``, ``load_youtube_vos``, ``load_uvo``,
                         ``export_davis``, ``export_youtube_vos`` (imports FiftyOne)
=======================  ================================================================================

Importing this package imports no FiftyOne: the FiftyOne functions below are resolved on first use.
"""

from sampd_plugin.lazy import lazy_attributes

_LAZY = {
    "VideoSequence": "sampd_plugin.datasets.base",
    "read_davis": "sampd_plugin.datasets.davis",
    "read_youtube_vos": "sampd_plugin.datasets.youtube_vos",
    "read_uvo": "sampd_plugin.datasets.uvo",
    "resolve_overlaps": "sampd_plugin.datasets.labelmaps",
    "load_davis": "sampd_plugin.datasets.fiftyone_io",
    "load_youtube_vos": "sampd_plugin.datasets.fiftyone_io",
    "load_uvo": "sampd_plugin.datasets.fiftyone_io",
    "export_davis": "sampd_plugin.datasets.fiftyone_io",
    "export_youtube_vos": "sampd_plugin.datasets.fiftyone_io",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
