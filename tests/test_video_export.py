"""Exporting a video network (SAUNetVideo) to ONNX / TorchScript / generator and predicting a video through it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

import inpainting.inference.video as V
from inpainting.data.images import read_image_rgb
from inpainting.data.video import frame_files
from inpainting.errors import ConfigError, InputError
from inpainting.inference import load_model
from inpainting.inference.checkpoint import CONFIG_KEY, NET_PREFIX, load_generator
from inpainting.inference.export import PARITY_TOLERANCE, export, export_onnx, max_difference
from inpainting.inference.inpainter import PaddedGenerator
from inpainting.inference.predict_runner import run
from inpainting.models.sa_unet_video import SAUNetVideo
from inpainting.predict import alias_mask_argument
from tests.conftest import CONF_DIR, compose_config, run_cli
from tests.test_inference import TINY_CONFIG, tiny_net
from tests.test_video_predict import FRAMES, HEIGHT, VIDEO_TINY, WIDTH, box_mask, frame

CLIP = 3  # the clip length the fake training checkpoint records (not the default 5)
VIDEO_CONFIG = {"_target_": "inpainting.models.sa_unet_video.SAUNetVideo", **VIDEO_TINY}
#: sizes for the parity check: neither side of the first a multiple of the window (4) or of the padding (8)
SIZES = [(17, 90), (40, 48)]


def video_net() -> SAUNetVideo:
    """The tiny video net with its attention switched on (gates 1) and a non-trivial head, so parity covers it."""
    torch.manual_seed(0)
    net = SAUNetVideo(**VIDEO_TINY).eval()
    with torch.no_grad():
        for block in net.attn.values():
            block.gamma.fill_(1.0)
        torch.nn.init.normal_(net.head.weight, std=0.05)
    return net


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A fake training checkpoint of the tiny video net (data.clip_length = 3), exported by the command line to
    ONNX and in-process to a generator file; shared by this module's tests."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("video_export")
    state = {NET_PREFIX + k: v for k, v in video_net().state_dict().items()}
    config = {"model": VIDEO_CONFIG, "data": {"clip_length": CLIP}}
    ckpt = folder / "video.ckpt"
    torch.save({CONFIG_KEY: config, "state_dict": state, "global_step": 7}, ckpt)
    onnx_path = folder / "video.onnx"
    result = run_cli(
        [f"ckpt_path={ckpt}", "format=onnx", f"output={onnx_path}", f"hydra.run.dir={folder / 'run'}"],
        cwd=CONF_DIR.parent,
        entry="inpainting.export",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {"ckpt": ckpt, "onnx": onnx_path, "generator": export(ckpt, "generator", folder / "video.pt")}


def test_video_onnx_has_clip_inputs_and_matches_pytorch(files):
    onnx = pytest.importorskip("onnx")
    model = load_model(files["onnx"])
    assert model.kind == "onnx" and model.frames == CLIP
    assert model.info["metadata"]["clip_length"] == CLIP and model.info["metadata"]["global_step"] == 7
    inputs = {i.name: i for i in onnx.load(str(files["onnx"])).graph.input}
    dims = [[d.dim_value or d.dim_param for d in inputs[n].type.tensor_type.shape.dim] for n in inputs]
    assert [len(d) for d in dims] == [5, 5] and all(d[1] == CLIP for d in dims)  # T fixed, B/H/W dynamic
    assert all(isinstance(d[0], str) and isinstance(d[3], str) and isinstance(d[4], str) for d in dims)
    diff = max_difference(PaddedGenerator(video_net()), model, SIZES, frames=CLIP)
    print(f"max |PyTorch - ONNX| on {CLIP}-frame clips at {SIZES}: {diff:.3g}")
    assert diff < PARITY_TOLERANCE
    clips = np.zeros((2, CLIP, 3, 20, 36), np.float32), np.ones((2, CLIP, 1, 20, 36), np.float32)
    assert model(*clips).shape == (2, CLIP, 3, 20, 36)  # dynamic batch


def test_generator_export_keeps_the_clip_length(files):
    net, config = load_generator(files["generator"])
    assert isinstance(net, SAUNetVideo) and config["metadata"]["clip_length"] == CLIP
    assert V.recorded_clip_length(config) == CLIP
    assert V.load_video_method(files["generator"]).window == CLIP


def test_video_torchscript_export_matches_pytorch(files, tmp_path):
    path = export(files["generator"], "torchscript", tmp_path / "video.ts")
    model = load_model(path, trust_code=True)
    assert model.frames == CLIP
    assert max_difference(PaddedGenerator(video_net()), model, SIZES[:1], frames=CLIP) < PARITY_TOLERANCE


def test_a_video_net_with_the_temporal_prior_exports_to_onnx(tmp_path):
    """The nearest-visible-frame prior is elementwise ops over the recorded T: the ONNX file computes it too."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = SAUNetVideo(**VIDEO_TINY, fill_prior=True, temporal_prior=True, propagated_mask=0.5).eval()
    with torch.no_grad():
        torch.nn.init.normal_(net.head.weight, std=0.05)
    config = {**VIDEO_CONFIG, "fill_prior": True, "temporal_prior": True, "propagated_mask": 0.5}
    path = export_onnx(net, config, tmp_path / "prior.onnx", frames=CLIP)
    model = load_model(path)
    assert max_difference(PaddedGenerator(net), model, SIZES[:1], frames=CLIP) < PARITY_TOLERANCE


def write_frames(folder: Path, count: int) -> tuple[Path, Path]:
    """``count`` PNG frames and one static PNG mask (a box over the moving square)."""
    folder.mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), cv2.cvtColor(frame(i), cv2.COLOR_RGB2BGR))
    mask = folder.parent / f"{folder.name}_mask.png"
    cv2.imwrite(str(mask), box_mask(3, 6, 14, 22))
    return folder, mask


def predict_in_process(tmp_path: Path, *overrides: str):
    try:
        cfg = compose_config(tmp_path, ["progress=false", *alias_mask_argument(list(overrides))], "predict")
        return run(cfg)
    finally:
        GlobalHydra.instance().clear()


def test_predict_through_the_onnx_file_matches_the_generator_file(files, tmp_path):
    source, mask = write_frames(tmp_path / "frames", FRAMES)
    out_onnx, out_pt = tmp_path / "onnx_out", tmp_path / "pt_out"
    result = run_cli(
        [f"ckpt_path={files['onnx']}", f"input={source}", f"mask={mask}", f"output={out_onnx}/", "margin=4"]
        + [f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=CONF_DIR.parent,
        entry="inpainting.predict",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on clips of {CLIP} frames" in result.stdout + result.stderr
    predict_in_process(
        tmp_path,
        f"ckpt_path={files['generator']}",
        f"input={source}",
        f"mask={mask}",
        f"output={out_pt}/",
        "margin=4",
    )
    holes = box_mask(3, 6, 14, 22) > 0
    pairs = list(zip(frame_files(out_onnx), frame_files(out_pt), strict=True))
    assert len(pairs) == FRAMES
    for i, (a, b) in enumerate(pairs):
        got, expected = read_image_rgb(a).astype(int), read_image_rgb(b).astype(int)
        assert np.array_equal(got[~holes], frame(i)[~holes])
        assert np.abs(got - expected).max() <= 2, i
    assert not np.array_equal(read_image_rgb(pairs[0][0])[holes], frame(0)[holes])


def test_wrong_window_or_input_for_an_exported_video_model_is_one_line(files, tmp_path):
    source, mask = write_frames(tmp_path / "frames", 4)
    with pytest.raises(
        ConfigError, match=rf"^window=5: .*video.onnx was exported for clips of {CLIP} frames"
    ):
        predict_in_process(
            tmp_path,
            f"ckpt_path={files['onnx']}",
            f"input={source}",
            f"mask={mask}",
            "window=5",
            "video=true",
        )
    model = load_model(files["onnx"])
    with pytest.raises(InputError, match=f"exported for clips of {CLIP} frames, got 4 frames") as error:
        model(np.zeros((1, 4, 3, 16, 16), np.float32), np.ones((1, 4, 1, 16, 16), np.float32))
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="got a single image"):
        model(np.zeros((1, 3, 16, 16), np.float32), np.ones((1, 1, 16, 16), np.float32))
    # a video shorter than T: its last frame repeated up to T, only its own frames come back
    frames, holes = np.stack([frame(0), frame(1)]), np.stack([box_mask(3, 6, 14, 22) > 0] * 2)
    assert V.clip_model(model)(frames, holes).shape == (2, HEIGHT, WIDTH, 3)


def test_image_onnx_on_a_video_still_runs_frame_by_frame(tmp_path):
    pytest.importorskip("onnxruntime")
    config = {**TINY_CONFIG, "attention": ["none", "none", "none"]}  # quick to export
    path = export_onnx(tiny_net(attention=config["attention"]), config, tmp_path / "image.onnx")
    assert load_model(path).frames is None and "frames" not in load_model(path).info
    method = V.load_video_method(path)
    assert method.window == 1 and isinstance(method.fill, V.PerFrameModel)
