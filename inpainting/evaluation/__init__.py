"""Evaluation: classical baselines, methods, fixed mask sets, metrics, the evaluator and its reports.

Names load their module on first use: ``inpainting`` itself imports the baselines, and must not import the
evaluator's dependencies with them.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "evaluator": ["evaluate"],
        "baselines": ["get_baseline"],
        "video_baselines": ["get_video_baseline"],
        "mask_sets": ["mask_set"],
    },
)
