"""Reconstruction, perceptual/style and adversarial losses, and the recipe that weighs them.

Names load their module on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "reconstruction": ["InpaintingLoss"],
        "recipe": ["RecipeLoss"],
        "perceptual": ["VGGFeatureLoss"],
        "adversarial": ["AdversarialLoss"],
    },
)
