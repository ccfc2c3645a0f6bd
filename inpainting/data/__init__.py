"""Images, videos and masks on disk, and the datamodules that serve them to training.

Names load their module on first use: reading an image (predict, the demo) must not import Lightning, which
the datamodules do.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "datamodule": ["InpaintingDataModule"],
        "video_datamodule": ["VideoDataModule"],
        "images": ["read_image_rgb", "read_mask"],
    },
)
