"""Training: the LightningModules (plain and GAN), callbacks, crash-safe checkpoint IO and speed options.

Names load their module on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "module": ["InpaintingModule"],
        "gan_module": ["GANInpaintingModule"],
    },
)
