"""@sampd/sampd: the FiftyOne plugin entry point (FiftyOne loads this file; see fiftyone.yml).

The operators live in ``operators/`` (one module each); they are thin wrappers over the SDK in ``sampd_plugin``.
They are imported inside :func:`register` so that importing this file (e.g. by test collection) stays cheap.
"""


def register(p):
    from .operators import OPERATORS

    for operator in OPERATORS:
        p.register(operator)
