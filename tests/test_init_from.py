"""init_from=: fine-tuning starts from a file's weights (generator file or training checkpoint, EMA preferred),
read by the one safe reader; shapes that differ are an error unless init_strict=false."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from omegaconf import OmegaConf, open_dict

from inpainting.errors import ConfigError
from inpainting.inference.checkpoint import save_generator
from inpainting.models.registry import build_network
from inpainting.training.fit import train
from inpainting.training.init_weights import load_initial_weights

TINY = {
    "_target_": "inpainting.models.sa_unet.SAUNet",
    "base_channels": 8,
    "channel_mults": [1, 2],
    "attention": ["window", "global"],
    "window_size": 4,
}


def _generator_file(tmp_path: Path, config: dict = TINY, seed: int = 3) -> tuple[Path, dict]:
    torch.manual_seed(seed)
    net = build_network(dict(config))
    path = save_generator(net, config, tmp_path / f"gen_{seed}.pt")
    return path, net.state_dict()


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_generator_file_weights_are_loaded_into_a_fresh_network(tmp_path):
    path, weights = _generator_file(tmp_path)
    torch.manual_seed(0)
    net = build_network(dict(TINY))
    assert not _equal(net.state_dict(), weights)
    assert load_initial_weights(net, str(path)) == []
    assert _equal(net.state_dict(), weights)


def test_an_image_model_initialises_the_video_model_key_for_key(tmp_path):
    path, weights = _generator_file(tmp_path)
    video = build_network(
        {**TINY, "_target_": "inpainting.models.sa_unet_video.SAUNetVideo", "temporal": True}
    )
    load_initial_weights(
        video, str(path)
    )  # strict: only the video-only cross-frame biases are not in the file
    shared = {k: v for k, v in video.state_dict().items() if k in weights}
    assert _equal(shared, weights)
    assert all(k.endswith(video.video_only_parameters) for k in video.state_dict() if k not in weights)


def test_shape_mismatch_names_the_layers_unless_not_strict(tmp_path):
    path, weights = _generator_file(tmp_path)
    wider = build_network({**TINY, "base_channels": 16})
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(ConfigError, match=r"init_from=.*shape differs: .*init_strict=false"):
        load_initial_weights(wider, str(path))
    assert _equal(wider.state_dict(), before), "a refused file changes nothing"
    skipped = load_initial_weights(wider, str(path), strict=False)
    assert skipped and all(" -> " in s or s in wider.state_dict() for s in skipped)
    loaded = [k for k, v in wider.state_dict().items() if k in weights and v.shape == weights[k].shape]
    assert loaded and all(torch.equal(wider.state_dict()[k], weights[k]) for k in loaded)


def test_a_gan_checkpoint_gives_its_ema_generator(tmp_path):
    _, raw = _generator_file(tmp_path, seed=1)
    _, ema = _generator_file(tmp_path, seed=2)
    state = {**{f"net.{k}": v for k, v in raw.items()}, **{f"net_ema.module.{k}": v for k, v in ema.items()}}
    path = tmp_path / "gan.ckpt"
    torch.save({"inpainting_config": {"model": dict(TINY)}, "state_dict": state}, path)
    net = build_network(dict(TINY))
    load_initial_weights(net, str(path))
    assert _equal(net.state_dict(), ema)


class _Payload:
    def __reduce__(self):  # what a crafted pickle would run on load
        return (Path.touch, (Path("pwned"),))


def test_a_crafted_file_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "crafted.pt"
    path.write_bytes(pickle.dumps({"format": "inpainting-generator", "payload": _Payload()}))
    with pytest.raises(Exception, match="crafted.pt") as error:
        load_initial_weights(build_network(dict(TINY)), str(path))
    assert not isinstance(error.value, (AttributeError, KeyError, TypeError))
    assert not (tmp_path / "pwned").exists()


def test_training_starts_from_the_file_with_a_fresh_optimizer(tiny_train_config, tmp_path):
    cfg = tiny_train_config("trainer.max_steps=1", "test=false", "optimizer.lr=1e-9", "scheduler=constant")
    config = OmegaConf.to_container(cfg.model, resolve=True)
    torch.manual_seed(5)
    net = build_network(config)
    path = save_generator(net, config, tmp_path / "start.pt")
    with open_dict(cfg):
        cfg.init_from = str(path)
    train(cfg)
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    trained = {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    start = net.state_dict()
    assert all(torch.allclose(trained[k].float(), start[k].float(), atol=1e-6) for k in start)
    assert checkpoint["global_step"] == 1, "a fresh schedule, not a resumed one"


def test_a_missing_init_file_is_one_line(tmp_path, image_folder):
    result = run_cli(
        [
            "data=folder",
            f"data.root={image_folder}",
            "logger=csv",
            f"hydra.run.dir={tmp_path / 'run'}",
            "init_from=/no/such/weights.pt",
        ],
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "init_from=/no/such/weights.pt" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
