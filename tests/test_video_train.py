"""A video model trains from the command line on a folder of videos (the README's command), temporal and per-frame,
and its checkpoint rebuilds the video network for predict/evaluate/export."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli
from test_video_data import write_video

from inpainting.inference.checkpoint import load_generator
from inpainting.models.sa_unet_video import SAUNetVideo


@pytest.mark.parametrize("temporal", ["true", "false"])
def test_a_video_model_trains_from_the_command_line(tmp_path, temporal):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        write_video(videos / f"clip{i}.avi", fourcc="MJPG")
    run = tmp_path / "run"
    result = run_cli(
        [
            "data=video",
            f"data.root={videos}",
            "mask=video_mixed",
            "model=sa_unet_video",
            f"model.temporal={temporal}",
            "model.base_channels=8",
            "data.image_size=32",
            "data.clip_length=3",
            "data.batch_size=2",
            "data.num_workers=0",
            "logger=csv",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "trainer.num_sanity_val_steps=0",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "val psnr" in result.stdout + result.stderr  # the progress line of a validation on clips
    net, config = load_generator(run / "checkpoints" / "last.ckpt")
    assert isinstance(net, SAUNetVideo) and net.temporal == (temporal == "true")
    clip = torch.zeros(1, 3, 3, 32, 32)
    assert net(clip, torch.zeros(1, 3, 1, 32, 32)).shape == clip.shape
