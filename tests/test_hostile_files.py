"""Hostile model files through the command lines: refused in one line naming the file and the option, nothing
written, nothing run.

- a TorchScript file (whatever its name) runs code on load and on every image: opened only with trust_code=true;
- a generator with NaN weights, or finite weights that compute NaN, is refused and never exported;
- a stored network config asking for terabytes is refused before anything is allocated;
- an empty file, a pickle payload, a generator file given to resume training, an ONNX graph that cannot
  allocate: one line each, never torch's advice to load with ``weights_only=False``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from inpainting.inference import Inpainter, load_model
from inpainting.inference.checkpoint import CheckpointError, check_checkpoint, load_failure_reason
from inpainting.inference.export import max_difference
from inpainting.inference.inpainter import METADATA_KEY, PaddedGenerator
from inpainting.models.gated_ca import GatedCANet
from inpainting.models.pconv_unet import PConvUNet
from inpainting.models.registry import MAX_PARAMETERS, SIZE_LIMITS, UnsafeModelConfig, build_network
from inpainting.models.sa_unet import SAUNet
from tests.conftest import TINY_OVERRIDES, run_cli
from tests.test_inference import TINY_CONFIG, tiny_generator_file, tiny_net

TORCHSCRIPT_HEADER = {
    "format": "inpainting-torchscript",
    "version": 1,
    "model": TINY_CONFIG,
    "pad_multiple": 8,
}


class WritesFiles(nn.Module):
    """Scripted: ``__setstate__`` (run by torch.jit.load) and ``forward`` (run per image) each create a file."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.payload = torch.zeros(1)

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_image + 0 * torch.from_file(self.marker + ".forward", True, 1)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.marker, self.payload, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.payload = torch.from_file(self.marker, True, 8)  # torch.jit.load runs this: it creates the file
        self.training = state[2]


def write_torchscript_payload(path: Path, marker: Path) -> Path:
    """A TorchScript file with a valid inpainting header, named like a checkpoint."""
    module = torch.jit.script(WritesFiles(str(marker)))
    torch.jit.save(module, str(path), _extra_files={METADATA_KEY: json.dumps(TORCHSCRIPT_HEADER)})
    return path


def write_generator(path: Path, model: dict[str, Any], state: dict[str, torch.Tensor]) -> Path:
    payload = {
        "format": "inpainting-generator",
        "version": 1,
        "model": model,
        "state_dict": state,
        "metadata": {},
    }
    torch.save(payload, path)
    return path


def nan_generator(path: Path) -> Path:
    state = tiny_net().state_dict()
    state["head.weight"][0, 0, 0, 0] = float("nan")
    return write_generator(path, TINY_CONFIG, state)


def overflowing_generator(path: Path) -> Path:
    """Finite weights (so they load) whose products overflow: every output is NaN."""
    net = tiny_net()
    with torch.no_grad():
        for parameter in net.parameters():
            if parameter.ndim == 4:
                parameter.mul_(1e30)
    return write_generator(path, TINY_CONFIG, net.state_dict())


def write_oom_onnx(path: Path) -> Path:
    """An ONNX graph that asks ONNX Runtime for 10**10 times the input's size (fails at once, allocates nothing)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    def info(name: str, channels: int) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, "H", "W"])

    scale = helper.make_tensor("scale", TensorProto.INT64, [4], [1, 1, 100000, 100000])
    nodes = [
        helper.make_node("Shape", ["masked_image"], ["shape"]),
        helper.make_node("Constant", [], ["factor"], value=scale),
        helper.make_node("Mul", ["shape", "factor"], ["huge_shape"]),
        helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"]),
        helper.make_node("ReduceMax", ["huge"], ["zero"], keepdims=1),
        helper.make_node("Add", ["masked_image", "zero"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "oom", [info("masked_image", 3), info("mask", 1)], [info("output", 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps({**TORCHSCRIPT_HEADER, "format": "inpainting-onnx"})
    onnx.save(model, str(path))
    return path


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def run_entry(entry: str, ckpt: Path, tmp_path: Path, images: Path, *extra: str):
    """Run predict / evaluate / export on ``ckpt`` as a user would; return (result, files it wrote)."""
    image = sorted(images.iterdir())[0]
    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.full(cv2.imread(str(image)).shape[:2], 255, np.uint8))
    args = {
        "inpainting.predict": [
            f"input={image}",
            f"mask={mask}",
            f"output={tmp_path}/out/filled.png",
            f"ckpt_path={ckpt}",
        ],
        "inpainting.evaluate": [f"data.root={images}", f"methods=[model@ckpt:{ckpt}]", "max_images=1"],
        "inpainting.export": [
            f"ckpt_path={ckpt}",
            "format=torchscript",
            f"output={tmp_path}/out/exported.ts",
        ],
    }[entry]
    before = files_under(tmp_path)
    result = run_cli([*args, *extra], cwd=tmp_path, entry=entry)
    written = {p for p in files_under(tmp_path) - before if p.suffix not in {".log", ".yaml"}}  # Hydra's own
    return result, written


def assert_refused(result, path: Path, *words: str) -> str:
    """Exit 1, no traceback, and one error line naming ``path`` and each of ``words``; return that line."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "weights_only=False" not in output, "torch's advice to load unsafely reached the user"
    lines = [line for line in output.splitlines() if str(path) in line and "Error" in line]
    assert lines, output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


ENTRIES = ["inpainting.predict", "inpainting.evaluate", "inpainting.export"]


# ------------------------------------------------------------------------------------------------------------
# 1. TorchScript is code
# ------------------------------------------------------------------------------------------------------------


def test_the_torchscript_payload_is_real(tmp_path):
    """torch.jit.load runs the scripted __setstate__, a forward pass the scripted forward: both write files."""
    marker = tmp_path / "marker"
    module = torch.jit.load(str(write_torchscript_payload(tmp_path / "evil.ckpt", marker)))
    assert marker.exists()
    module(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))
    assert Path(f"{marker}.forward").exists()


@pytest.mark.parametrize("entry", ENTRIES)
def test_torchscript_named_as_a_checkpoint_is_refused(tmp_path, image_folder, entry):
    marker = tmp_path / "marker"
    ckpt = write_torchscript_payload(tmp_path / "evil.ckpt", marker)
    result, written = run_entry(entry, ckpt, tmp_path, image_folder)
    # export never opens TorchScript (it reads checkpoints); predict and evaluate name the option that would
    line = assert_refused(result, ckpt, "TorchScript")
    if entry != "inpainting.export":
        assert "trust_code=true" in line
    assert not written, f"{entry} wrote {written}"
    assert not marker.exists() and not Path(f"{marker}.forward").exists()


def test_trust_code_is_the_one_gate(tmp_path, image_folder):
    """With trust_code=true predict opens the same file, so the refusal above is the option, not an accident."""
    marker = tmp_path / "marker"
    ckpt = write_torchscript_payload(tmp_path / "evil.pt", marker)
    result, _ = run_entry("inpainting.predict", ckpt, tmp_path, image_folder, "trust_code=true")
    assert result.returncode == 0, result.stderr
    assert marker.exists() and Path(f"{marker}.forward").exists()


# ------------------------------------------------------------------------------------------------------------
# 2. non-finite weights and outputs
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
def test_nan_weights_are_refused_on_load(tmp_path, image_folder, entry):
    ckpt = nan_generator(tmp_path / "nan.pt")
    result, written = run_entry(entry, ckpt, tmp_path, image_folder)
    assert_refused(result, ckpt, "head.weight", "NaN")
    assert not written, f"{entry} wrote {written}"


def test_export_never_writes_a_model_that_computes_nan(tmp_path, image_folder):
    ckpt = overflowing_generator(tmp_path / "overflow.pt")
    result, written = run_entry("inpainting.export", ckpt, tmp_path, image_folder)
    assert_refused(result, ckpt, f"output={tmp_path / 'out' / 'exported.ts'}", "NaN")
    assert not written, f"export wrote {written}"  # neither the file nor its temporary


def test_predict_refuses_nan_outputs_in_one_line(tmp_path, image_folder):
    ckpt = overflowing_generator(tmp_path / "overflow.pt")
    result, written = run_entry("inpainting.predict", ckpt, tmp_path, image_folder)
    assert_refused(result, ckpt, "NaN")
    assert not written


def test_max_difference_does_not_drop_nan():
    """Python's max(0.0, nan) is 0.0: a NaN output would have passed the export check."""
    net = tiny_net()
    reference = PaddedGenerator(net).eval()

    def half_nan(masked: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = reference(torch.from_numpy(masked), torch.from_numpy(mask)).numpy()
        out[..., 0, 0] = np.nan
        return out

    assert np.isnan(max_difference(reference, half_nan, [(16, 16)]))
    infinite = max_difference(reference, lambda m, k: np.full((1, 3, 16, 16), np.inf, np.float32), [(16, 16)])
    assert not infinite <= 1e-4


# ------------------------------------------------------------------------------------------------------------
# 3. network sizes
# ------------------------------------------------------------------------------------------------------------


def test_a_terabyte_network_is_refused_before_allocation(tmp_path, image_folder):
    ckpt = write_generator(tmp_path / "huge.pt", {**TINY_CONFIG, "base_channels": 10**6}, {})
    started = time.perf_counter()
    result, written = run_entry("inpainting.predict", ckpt, tmp_path, image_folder)
    assert_refused(result, ckpt, "base_channels", "1 to 1024")
    assert not written
    assert time.perf_counter() - started < 120  # the CLI's start-up; building it would take hours or crash


@pytest.mark.parametrize(
    ("cls", "arguments"),
    [
        (SAUNet, {"base_channels": 10**6}),
        (SAUNet, {"channel_mults": [1, 2, 10**6]}),
        (SAUNet, {"num_heads": 10**5}),
        (SAUNet, {"window_size": 10**6}),
        (SAUNet, {"blocks_per_level": 10**4}),
        (SAUNet, {"kv_pool": 0.5}),
        (PConvUNet, {"kernel_sizes": [7, 5, 10**4 + 1]}),
        (GatedCANet, {"dilations": [2, 10**6]}),
        (GatedCANet, {"patch_size": 10**4}),
    ],
)
def test_each_size_argument_is_bounded(cls, arguments):
    (key,) = arguments
    low, high = SIZE_LIMITS[cls][key]
    config = {"_target_": f"{cls.__module__}.{cls.__qualname__}", **arguments}
    with pytest.raises(UnsafeModelConfig, match=rf"model\.{key}=.*from {low} to {high}"):
        build_network(config)


def test_a_network_within_every_bound_but_too_large_in_total_is_refused():
    """base 1024 x mult 64 = 65536 channels: each argument is in range, the 3x3 convolutions are not."""
    config = {**TINY_CONFIG, "base_channels": 1024, "channel_mults": [64, 64], "attention": ["none", "none"]}
    with pytest.raises(UnsafeModelConfig, match=f"at most {MAX_PARAMETERS:,}"):
        build_network(config)
    with pytest.raises(UnsafeModelConfig, match="list of 100 items"):
        build_network({**TINY_CONFIG, "channel_mults": [1] * 100})
    with pytest.raises(UnsafeModelConfig, match="finite"):
        build_network({**TINY_CONFIG, "attention_gate_init": float("nan")})


def test_the_size_check_draws_no_random_numbers():
    """Training resume checks the stored config; a draw from the global RNG would change the resumed data order."""
    state = torch.random.get_rng_state()
    with pytest.raises(UnsafeModelConfig):
        build_network(
            {**TINY_CONFIG, "base_channels": 1024, "channel_mults": [64, 64], "attention": ["none"] * 2}
        )
    assert torch.equal(state, torch.random.get_rng_state())


# ------------------------------------------------------------------------------------------------------------
# 4. empty files, torch's advice, generator files given to resume, ONNX Runtime out of memory
# ------------------------------------------------------------------------------------------------------------


def test_an_empty_file_gets_a_reason(tmp_path, image_folder):
    ckpt = tmp_path / "empty.ckpt"
    ckpt.touch()
    result, written = run_entry("inpainting.predict", ckpt, tmp_path, image_folder)
    assert_refused(result, ckpt, "empty (0 bytes)")
    assert not written


@pytest.mark.filterwarnings("ignore:.torch.load. received a zip file:UserWarning")
def test_torchs_unsafe_advice_is_rephrased(tmp_path, image_folder):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "pickle.ckpt"
    torch.save({"state_dict": {}, "inpainting_config": {"model": TINY_CONFIG}, "evil": Payload()}, ckpt)
    result, written = run_entry("inpainting.evaluate", ckpt, tmp_path, image_folder)
    assert_refused(result, ckpt, "system", "weights_only=True")
    assert not written and not marker.exists()
    # torch's own texts, rephrased: the one for a pickle payload and the one for a TorchScript archive
    for error in (
        _torch_error(lambda: torch.load(ckpt, weights_only=True)),
        _torch_error(_load_ts(tmp_path)),
    ):
        assert "weights_only" in str(error)
        reason = load_failure_reason(error)
        assert "weights_only" not in reason and "\n" not in reason and reason.strip()


def _torch_error(load) -> BaseException:
    with pytest.raises(Exception) as error:  # noqa: PT011 - whatever torch raises is what gets rephrased
        load()
    return error.value


def _load_ts(tmp_path: Path):
    path = write_torchscript_payload(tmp_path / "ts.pt", tmp_path / "ts_marker")
    return lambda: torch.load(path, weights_only=True)


def test_a_generator_file_given_to_resume_training_says_what_it_is(tmp_path, image_folder):
    ckpt = tiny_generator_file(tmp_path / "generator.pt")
    with pytest.raises(CheckpointError, match="is a generator file.*not a training checkpoint"):
        check_checkpoint(ckpt)
    overrides = [
        *TINY_OVERRIDES,
        f"data.root={image_folder}",
        f"paths.root_dir={tmp_path}",
        f"ckpt_path={ckpt}",
    ]
    result = run_cli(overrides, cwd=tmp_path)
    assert_refused(result, ckpt, "generator file", "predict")
    assert "pytorch-lightning_version" not in result.stdout + result.stderr


def test_onnx_runtime_out_of_memory_is_one_line_with_what_to_change(tmp_path, image_folder):
    model_path = write_oom_onnx(tmp_path / "greedy.onnx")
    result, written = run_entry("inpainting.predict", model_path, tmp_path, image_folder)
    line = assert_refused(result, model_path, "ONNX Runtime ran out of memory", "max_side", "strategy=crop")
    assert "Failed to allocate memory" in line
    assert not written
    # the same from the Python API
    inpainter = Inpainter(load_model(model_path), "full")
    with pytest.raises(Exception, match="ran out of memory.*smaller max_side") as error:  # noqa: PT011
        inpainter(np.zeros((16, 16, 3), np.uint8), np.ones((16, 16), np.uint8))
    assert "\n" not in str(error.value)
