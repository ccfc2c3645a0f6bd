"""Plain torch networks (no Lightning, no Hydra): what a script builds a generator with.

Names load their module on first use, so importing one network does not import every other one.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "registry": ["build_network"],
        "sa_unet": ["SAUNet"],
        "sa_unet_video": ["SAUNetVideo"],
    },
)
