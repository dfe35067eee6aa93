"""Browser checks of the FiftyOne App with the plugin (``python -m tests.app.check``, ``make app-check``)."""
