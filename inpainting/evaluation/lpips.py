"""LPIPS v0.1 (Zhang et al. 2018) with the AlexNet or VGG16 head, computed as the reference ``lpips`` package does.

The linear heads are the v0.1 files that torchmetrics ships (``torchmetrics/functional/image/lpips_models``,
byte-identical to the ``lpips`` package's ``weights/v0.1``), so they are always here. The backbones are
torchvision's ImageNet AlexNet / VGG16 ``features``: every library builds them through torchvision, which does not
import beside this project's CPU torch, so the two conv stacks are written out here in torchvision's layout (the
``features.N.*`` keys of ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` load unchanged).

Distance of images ``x, y`` in [-1, 1]: scale by LPIPS's shift/scale, take five ReLU outputs of the backbone, unit-
normalise each position's feature vector over channels, square the difference, weight channels by the head (a
1x1 conv), average over positions and sum over the five layers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn

#: LPIPS's input scaling (the reference ScalingLayer): ``(x - shift) / scale`` on [-1, 1] RGB
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# torchvision ``features`` layouts: ("C", in, out, kernel, stride, padding) convolutions, "M" max-pools
_ALEX = [("C", 3, 64, 11, 4, 2), "M", ("C", 64, 192, 5, 1, 2), "M", ("C", 192, 384, 3, 1, 1)]
_ALEX += [("C", 384, 256, 3, 1, 1), ("C", 256, 256, 3, 1, 1)]
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
#: index (in ``features``) of the ReLU after which each LPIPS layer is tapped
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
#: the torchvision ImageNet state dicts the backbones load (file names as torch.hub caches them)
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def backbone_features(net: str) -> nn.Sequential:
    """The conv stack of torchvision's ``alexnet().features`` / ``vgg16().features`` up to the last LPIPS tap."""
    layers: list[nn.Module] = []
    if net == "alex":
        for spec in _ALEX:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            else:
                _, cin, cout, k, s, p = spec
                layers += [nn.Conv2d(cin, cout, k, stride=s, padding=p), nn.ReLU()]
    elif net == "vgg":
        cin = 3
        for spec in _VGG16:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(spec), 3, padding=1), nn.ReLU()]
                cin = int(spec)
    else:
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    return nn.Sequential(*layers)


def head_weights_path(net: str) -> Path:
    """The v0.1 linear-head file that torchmetrics ships for ``net``."""
    path = Path(str(resources.files("torchmetrics.functional.image") / "lpips_models" / f"{net}.pth"))
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS v0.1 head {path} not found: this torchmetrics does not ship it (upgrade it)"
        )
    return path


def normalize_channels(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Unit length over channels at every position (the reference ``normalize_tensor``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """``lpips(x, y)`` -> ``B`` distances for ``B x 3 x H x W`` images in [0, 1] (lower = more alike).

    ``backbone``: a torchvision-format state dict (path) for :func:`backbone_features`; ``heads``: the v0.1 head
    file (default: torchmetrics' copy). Both are read with ``torch.load(weights_only=True)``: tensors only.
    """

    def __init__(self, net: str, backbone: str | Path, heads: str | Path | None = None) -> None:
        super().__init__()
        self.net = net
        self.features = backbone_features(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(state)
        head_state = torch.load(heads or head_weights_path(net), map_location="cpu", weights_only=True)
        for k, lin in enumerate(self.lins):
            lin.weight.data.copy_(head_state[f"lin{k}.model.1.weight"])
        self.requires_grad_(False)
        self.eval()

    def layers(self, x: Tensor) -> list[Tensor]:
        """The five tapped feature maps of ``x`` (in [0, 1])."""
        h = ((x * 2 - 1) - self.shift) / self.scale
        taps, out = TAPS[self.net], []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in taps:
                out.append(h)
        return out

    @torch.no_grad()
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        total = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
        for lin, fx, fy in zip(self.lins, self.layers(x.float()), self.layers(y.float()), strict=True):
            diff = (normalize_channels(fx) - normalize_channels(fy)).pow(2)
            total += lin(diff).mean(dim=(1, 2, 3))
        return total
