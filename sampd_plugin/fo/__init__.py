"""FiftyOne glue: sequences of a collection, labels, the bulk writer, runs and their markers, the SDK functions,
the J&F evaluation, the saved views, the plots and the App's colours.

Glue modules may import the core, the backends, :mod:`sampd_plugin.datasets` and the FiftyOne-free helpers of
:mod:`sampd_plugin.ops` (ownership, threads). Importing this package imports nothing.
"""
