"""A crafted checkpoint or generator file can neither run code nor write files, through any entry point.

Each payload is first shown to be real: Hydra's ``instantiate`` (what the loaders used before the registry)
would have written the marker file. Then every loader (predict/demo ``load_model``, evaluate's ``ckpt:``
method, ``export``, training resume) and the command lines refuse it with a one-line error, and the marker
never appears.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inpainting.evaluation.methods import build_method
from inpainting.inference import load_model
from inpainting.inference.checkpoint import CheckpointError, check_checkpoint, load_generator
from inpainting.inference.export import export
from inpainting.models.registry import GENERATORS, UnsafeModelConfig, build_network, check_model_config
from inpainting.models.sa_unet import SAUNet
from tests.conftest import run_cli

SAFE = {"_target_": "inpainting.models.sa_unet.SAUNet", "base_channels": 8, "num_heads": 2, "window_size": 4}


def write_text_payload(marker: Path) -> dict[str, Any]:
    """``Path(marker).write_text("pwned")`` spelled as targets that start with ``inpainting.models.``."""
    return {
        "_target_": "inpainting.models.vgg.Path.write_text",
        "_args_": [{"_target_": "inpainting.models.vgg.Path", "_args_": [str(marker)]}, "pwned"],
    }


def hub_payload(marker: Path, repo: Path) -> dict[str, Any]:
    """``torch.hub.load`` of a local repo whose ``hubconf.py`` creates ``marker``: runs any Python file."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "hubconf.py").write_text(
        f"open({str(marker)!r}, 'w').write('pwned')\n\ndef evil():\n    return 1\n"
    )
    return {
        "_target_": "inpainting.models.vgg.torch.hub.load",
        "repo_or_dir": str(repo),
        "model": "evil",
        "source": "local",
        "trust_repo": True,
    }


def payloads(tmp_path: Path, marker: Path) -> dict[str, dict[str, Any]]:
    return {
        "write_text": write_text_payload(marker),
        "torch_hub": hub_payload(marker, tmp_path / "hub_repo"),
        "nested_target": {**SAFE, "base_channels": write_text_payload(marker)},
        "nested_in_list": {**SAFE, "channel_mults": [1, write_text_payload(marker)]},
        "partial": {**SAFE, "_partial_": True},
        "interpolation": {**SAFE, "upsample": "${oc.env:HOME}"},
        "class_path_prefix": {**SAFE, "_target_": "inpainting.models.sa_unet.F.pad"},
    }


PAYLOAD_NAMES = list(payloads(Path("/unused"), Path("/unused/marker")))


@pytest.mark.parametrize("route", ["write_text", "torch_hub"])
def test_the_payloads_are_real(tmp_path, route):
    """Without the registry, instantiating these configs writes the marker (so the refusals below mean something)."""
    marker = tmp_path / "marker"
    instantiate(OmegaConf.create(payloads(tmp_path, marker)[route]))
    assert marker.exists()


def write_generator_file(path: Path, model: dict[str, Any]) -> Path:
    torch.save(
        {"format": "inpainting-generator", "version": 1, "model": model, "state_dict": {}, "metadata": {}},
        path,
    )
    return path


def write_training_checkpoint(path: Path, model: dict[str, Any]) -> Path:
    torch.save({"state_dict": {}, "global_step": 1, "inpainting_config": {"model": model}}, path)
    return path


def every_loader(path: Path) -> list[tuple[str, Any]]:
    return [
        ("predict/demo load_model", lambda: load_model(path)),
        ("evaluate ckpt: method", lambda: build_method(f"ckpt:{path}")),
        ("export", lambda: export(path, "generator", path.with_name("out.pt"))),
        ("training resume check", lambda: check_checkpoint(path)),
    ]


@pytest.mark.parametrize("kind", ["generator", "training"])
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_every_loader_refuses_crafted_model_configs(tmp_path, name, kind):
    marker = tmp_path / "marker"
    model = payloads(tmp_path, marker)[name]
    writer = write_generator_file if kind == "generator" else write_training_checkpoint
    path = writer(tmp_path / f"crafted_{name}.pt", model)
    for loader_name, load in every_loader(path):
        if kind == "generator" and loader_name == "training resume check":
            continue
        with pytest.raises(CheckpointError, match="refusing") as error:
            load()
        assert "\n" not in str(error.value), f"{loader_name}: the error is one line"
        assert not marker.exists(), f"{loader_name} ran the {name} payload"
    assert not (tmp_path / "out.pt").exists(), "nothing was exported"


def test_pickle_payload_is_refused_by_every_loader(tmp_path):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "pickle.ckpt"
    torch.save({"state_dict": {}, "inpainting_config": {"model": SAFE}, "evil": Payload()}, path)
    for loader_name, load in every_loader(path):
        with pytest.raises(CheckpointError, match="weights_only=True"):
            load()
        assert not marker.exists(), loader_name


@pytest.mark.parametrize(
    ("entry", "args"),
    [
        ("inpainting.predict", ["input={image}", "mask={mask}", "output={tmp}/out.png", "ckpt_path={ckpt}"]),
        ("inpainting.export", ["ckpt_path={ckpt}", "format=generator", "output={tmp}/out.pt"]),
        ("inpainting.evaluate", ["data.root={images}", "methods=[crafted@ckpt:{ckpt}]", "max_images=1"]),
        ("inpainting.demo", ["ckpt_path={ckpt}"]),
    ],
)
def test_command_lines_refuse_the_hub_route_in_one_line(tmp_path, image_folder, entry, args):
    marker = tmp_path / "marker"
    ckpt = write_training_checkpoint(tmp_path / "crafted.ckpt", hub_payload(marker, tmp_path / "hub_repo"))
    image = sorted(image_folder.iterdir())[0]
    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.full(cv2.imread(str(image)).shape[:2], 255, np.uint8))
    fill = {"image": image, "mask": mask, "tmp": tmp_path, "ckpt": ckpt, "images": image_folder}
    result = run_cli([a.format(**fill) for a in args], cwd=tmp_path, entry=entry)
    assert result.returncode != 0
    assert "CheckpointError" in result.stderr + result.stdout and "refusing" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_registry_names_only_our_networks_and_builds_plain_configs():
    assert {cls.__module__.split(".")[0] for cls in GENERATORS.values()} == {"inpainting"}
    net = build_network(SAFE)
    assert isinstance(net, SAUNet) and net.stem.out_channels == 8
    assert isinstance(build_network({**SAFE, "_target_": None, "name": "sa_unet"}), SAUNet)
    with pytest.raises(TypeError, match="no_such"):
        check_model_config({**SAFE, "no_such": 1})
    for bad in (
        {**SAFE, "_target_": "os.system"},
        {**SAFE, "attention": {"a": 1}},
        {**SAFE, "_recursive_": False},
    ):
        with pytest.raises(UnsafeModelConfig):
            check_model_config(bad)


def test_a_gan_checkpoint_loads_its_ema_generator(tmp_path):
    """Tools load the EMA generator a GAN run validated with, and say so; a plain run's raw one."""
    torch.manual_seed(0)
    raw, ema = (
        SAUNet(**{k: v for k, v in SAFE.items() if k != "_target_"}),
        SAUNet(**{k: v for k, v in SAFE.items() if k != "_target_"}),
    )
    state = {f"net.{k}": v for k, v in raw.state_dict().items()}
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": state, "inpainting_config": {"model": SAFE}}, path)
    _net, config = load_generator(path)
    assert config["weights"] == "raw"
    state.update({f"net_ema.module.{k}": v for k, v in ema.state_dict().items()})
    torch.save({"state_dict": state, "inpainting_config": {"model": SAFE}}, path)
    net, config = load_generator(path)
    assert config["weights"] == "ema"
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), ema.state_dict().values(), strict=True)
    )
    out = export(path, "generator", tmp_path / "g.pt")
    assert torch.load(out, weights_only=True)["metadata"]["weights"] == "ema"
