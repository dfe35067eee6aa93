"""SAM's real architecture with random weights, as a segmenter factory for the benchmark CLI (timings without a
checkpoint; the masks are meaningless, so the scores are too)::

    python -m sampd_plugin.benchmark davis --root DAVIS --timing \\
        --model perf.random_sam:random_sam --model-kwargs '{"model_type": "vit_h", "device": "cuda"}'

(run from the repository root, so that ``benchmarks`` is importable). It is also a minimal example of bringing your
own segmenter through ``--model package.module:factory``.
"""


def random_sam(model_type: str = "vit_h", device=None, half=False):
    """A :class:`~sampd_plugin.backends.sam.SamBackend` over a randomly initialised ``model_type`` SAM."""
    from segment_anything import sam_model_registry

    from sampd_plugin.backends.sam import SamBackend

    return SamBackend(model=sam_model_registry[model_type](checkpoint=None), model_type=model_type, device=device,
                      half=half)
