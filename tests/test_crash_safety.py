"""Crash safety: atomic checkpoints, kill -9 and resume, the non-finite-loss guard, refusing crafted checkpoints.

What a mid-epoch resume from ``last.ckpt`` continues exactly (checked against an uninterrupted run):
the global step, the epoch and batch position inside it (Lightning's fit-loop state), the weights, Adam's
moments and step counts, the LR schedule (so the per-step learning rate equals the uninterrupted run's).
What it does not reproduce bit for bit: *which* images the rest of the interrupted epoch serves and the
random training masks/crops. The train DataLoader is not stateful, so Lightning restarts its iterator: the
resumed process redraws the shuffle from torch's freshly seeded RNG and serves only the batches the epoch had
left (``batches_per_epoch - batch_idx``), i.e. some images of that epoch twice and some not at all; later
epochs are full permutations again, but drawn from the restarted RNG stream. Training masks are seeded by
(process seed, rank, index, per-process draw count), and the draw count restarts too. So the loss curve after
a resume is statistically, not numerically, the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from inpainting.inference.checkpoint import CheckpointError, read_checkpoint
from inpainting.training.checkpoint_io import AtomicCheckpointIO, LastCheckpoint
from inpainting.training.fit import train
from tests.conftest import CONF_DIR, TINY_OVERRIDES, write_tiny_images

REPO_ROOT = CONF_DIR.parent


class StepRecorder(L.Callback):
    """Test helper, loaded by the CLI runs below through ``+callbacks.recorder._target_=...``: appends one JSON
    line per optimizer step (step, epoch, batch position, image indices, loss, learning rate) and, at the start
    of fit, the optimizer state it starts from. ``sleep_s`` slows steps down so the test can kill mid-run."""

    def __init__(self, path: str, sleep_s: float = 0.0) -> None:
        self.path = Path(path)
        self.sleep_s = sleep_s

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = trainer.optimizers[0].state
        self._write(
            {
                "event": "start",
                "global_step": trainer.global_step,
                "adam_steps": sorted({int(s["step"]) for s in state.values()}),
                "exp_avg_sq_sum": float(sum(s["exp_avg_sq"].double().sum() for s in state.values())),
                "weight_sum": float(sum(p.detach().double().sum() for p in pl_module.parameters())),
            }
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._write(
            {
                "event": "step",
                "step": trainer.global_step,
                "epoch": trainer.current_epoch,
                "batch_idx": batch_idx,
                "indices": batch["index"].tolist(),
                "loss": float(outputs["loss"]),
                "lr": trainer.optimizers[0].param_groups[0]["lr"],
            }
        )
        time.sleep(self.sleep_s)


def _records(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    starts = [r for r in lines if r["event"] == "start"]
    assert len(starts) == 1
    return starts[0], [r for r in lines if r["event"] == "step"]


# -- atomic writes ---------------------------------------------------------------------------------------------


def test_trainer_config_writes_checkpoints_through_atomic_checkpoint_io(tiny_train_config):
    cfg = tiny_train_config()
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    last = [cb for cb in callbacks if isinstance(cb, LastCheckpoint)]
    assert len(last) == 1 and last[0].save_last and last[0].save_top_k == 0


def test_a_write_that_dies_midway_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    real_save = torch.save

    def dying_save(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"half a checkpoint")  # bytes reach the disk, then the process "dies"
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"], "the temp file is cleaned up"

    io.save_checkpoint({"global_step": 3, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 3
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


# -- kill -9 mid-epoch, resume ---------------------------------------------------------------------------------

MAX_STEPS = 10
EVERY_N = 3
BATCHES_PER_EPOCH = 4  # 10 images -> 8 train / 1 val / 1 test, batch 2


def _cli(tmp_path: Path, images: Path, name: str, sleep_s: float, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "inpainting.train",
        *TINY_OVERRIDES,
        f"data.root={images}",
        f"trainer.max_steps={MAX_STEPS}",
        "trainer.val_check_interval=1000",
        "+trainer.limit_val_batches=0",
        "test=false",
        f"callbacks.last_checkpoint.every_n_train_steps={EVERY_N}",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / name}",
        "+callbacks.recorder._target_=tests.test_crash_safety.StepRecorder",  # importable: PYTHONPATH=repo
        f"+callbacks.recorder.path={tmp_path / f'{name}.jsonl'}",
        f"+callbacks.recorder.sleep_s={sleep_s}",
        *extra,
    ]


@pytest.mark.slow  # three CLI runs (one killed): ~45 s on 2 shared cores
def test_sigkill_mid_epoch_then_resume_continues_step_optimizer_schedule_and_position(tmp_path):
    images = tmp_path / "images"
    write_tiny_images(images, count=10)
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(REPO_ROOT)}
    run = {"cwd": tmp_path, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    # the uninterrupted reference and the run to be killed, side by side; the latter sleeps 0.3 s per step
    reference = subprocess.Popen(_cli(tmp_path, images, "reference", 0.0), **run)
    victim = subprocess.Popen(_cli(tmp_path, images, "victim", 0.3), **run)
    last = tmp_path / "victim" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, f"not killed mid-run: {victim.stderr.read().decode()[-3000:]}"
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()[-3000:]

    checkpoint = torch.load(last, weights_only=True)  # complete, thanks to the atomic write
    s0 = checkpoint["global_step"]
    e0, b0 = divmod(s0, BATCHES_PER_EPOCH)
    assert s0 % EVERY_N == 0 and b0 != 0, f"checkpoint at step {s0} must be mid-epoch"

    resumed = subprocess.run(_cli(tmp_path, images, "resumed", 0.0, f"ckpt_path={last}"), **run, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]

    _, ref = _records(tmp_path / "reference.jsonl")
    _, killed = _records(tmp_path / "victim.jsonl")
    start, res = _records(tmp_path / "resumed.jsonl")
    by_step = {r["step"]: r for r in ref}
    # the reference is a valid yardstick: the same seed gives the killed run the very same steps
    assert killed[:s0] == ref[:s0]

    # global step, weights and Adam state continue from the checkpoint
    assert start["global_step"] == s0
    assert start["adam_steps"] == [s0]
    opt_state = checkpoint["optimizer_states"][0]["state"].values()
    assert start["exp_avg_sq_sum"] == pytest.approx(
        sum(float(s["exp_avg_sq"].double().sum()) for s in opt_state)
    )
    saved_weights = sum(
        float(v.double().sum()) for k, v in checkpoint["state_dict"].items() if k.startswith("net.")
    )
    assert start["weight_sum"] == pytest.approx(saved_weights, rel=1e-9)
    assert [r["step"] for r in res] == list(range(s0 + 1, MAX_STEPS + 1))

    # exact: the epoch / batch position of every step and the learning rate of the schedule
    for r in res:
        assert (r["epoch"], r["batch_idx"]) == (by_step[r["step"]]["epoch"], by_step[r["step"]]["batch_idx"])
        assert r["lr"] == pytest.approx(by_step[r["step"]]["lr"], rel=1e-12)
        assert torch.isfinite(torch.tensor(r["loss"]))

    # not exact: the image order. The non-stateful DataLoader restarts, so the resumed process's k-th shuffle
    # is the reference's k-th: the rest of epoch e0 gets the first batches of the reference's epoch-0 order,
    # epoch e0 + k (k >= 1) the reference's epoch-k order (holds while nothing but the samplers draws from
    # torch's global RNG). A stateful DataLoader (torchdata's StatefulDataLoader) would make it exact.
    order = {}
    for r in ref:
        order.setdefault(r["epoch"], {})[r["batch_idx"]] = r["indices"]
    for r in res:
        k = r["epoch"] - e0
        expected = order[0][r["batch_idx"] - b0] if k == 0 else order[k][r["batch_idx"]]
        assert r["indices"] == expected, r

    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == MAX_STEPS
    assert {int(s["step"]) for s in final["optimizer_states"][0]["state"].values()} == {MAX_STEPS}
    assert final["lr_schedulers"][0]["last_epoch"] == MAX_STEPS


# -- the non-finite loss guard ---------------------------------------------------------------------------------


class NaNOnCalls(nn.Module):
    """Wraps a generator and returns NaN on the chosen training forward calls (0-based)."""

    def __init__(self, net: nn.Module, bad_calls: set[int] | None = None) -> None:
        super().__init__()
        self.net = net
        self.bad_calls = bad_calls  # None: every call
        self.calls = 0

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.net(image, mask)
        call, self.calls = self.calls, self.calls + 1
        if self.training and (self.bad_calls is None or call in self.bad_calls):
            return out * float("nan")
        return out


class WeightTrace(L.Callback):
    """The generator's weights after every training batch (to see which batches changed them)."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append(torch.cat([p.detach().flatten() for p in pl_module.net.parameters()]))


def _guarded_fit(
    tiny_train_config, bad_calls: set[int] | None, *overrides: str
) -> tuple[L.LightningModule, L.Trainer, WeightTrace]:
    cfg = tiny_train_config("+trainer.limit_val_batches=0", *overrides)
    L.seed_everything(0)
    module = instantiate(cfg.module)
    module.net = NaNOnCalls(module.net, bad_calls)
    trace = WeightTrace()
    trainer = instantiate(
        cfg.trainer, logger=False, callbacks=[trace], enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, datamodule=instantiate(cfg.data))
    return module, trainer, trace


def test_a_nan_loss_step_is_skipped_and_counted(tiny_train_config):
    """Batch 1 of 3 gives NaN: no backward, no weight update, counted; the next good step resets the streak.

    Lightning still counts the skipped batch as a global step (and steps the LR schedule), but Adam makes no
    update for it: its per-parameter step count stays one behind the global step."""
    module, trainer, trace = _guarded_fit(tiny_train_config, {1}, "trainer.max_steps=3")
    assert module.nonfinite_total == 1 and module.nonfinite_in_a_row == 0
    assert module.net.calls == 3 and trainer.global_step == 3
    first, skipped, third = trace.weights
    assert torch.equal(skipped, first), "the NaN batch changed no weight"
    assert not torch.equal(third, skipped), "training goes on after it"
    assert {int(s["step"]) for s in trainer.optimizers[0].state.values()} == {2}
    assert all(torch.isfinite(p).all() for p in module.parameters()), "NaN never reached the weights"


def test_k_nan_losses_in_a_row_stop_with_a_clear_error(tiny_train_config):
    cfg = tiny_train_config(
        "+trainer.limit_val_batches=0", "trainer.max_steps=50", "+module.max_nonfinite_steps=3"
    )
    module = instantiate(cfg.module)
    module.net = NaNOnCalls(module.net)  # every call
    initial = torch.cat([p.detach().flatten() for p in module.net.parameters()]).clone()
    trace = WeightTrace()
    trainer = instantiate(
        cfg.trainer, logger=False, callbacks=[trace], enable_checkpointing=False, enable_progress_bar=False
    )
    with pytest.raises(FloatingPointError, match="3 non-finite losses in a row") as error:
        trainer.fit(module, datamodule=instantiate(cfg.data))
    assert "gradient_clip_val" in str(error.value) and "max_nonfinite_steps" in str(error.value)
    assert module.net.calls == 3 and module.nonfinite_total == 3, "stopped at the K-th, not later"
    assert all(torch.equal(w, initial) for w in trace.weights), "the weights never moved"


# -- refusing crafted checkpoints ------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs a shell command: what a malicious .ckpt would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "evil": _Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_read_checkpoint_refuses_a_pickle_that_would_run_code(malicious_checkpoint):
    path, marker = malicious_checkpoint
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_checkpoint(path)
    assert not marker.exists()
    # torch.load without weights_only=True would have run it: the marker proves the payload is real
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_resume_route_refuses_a_malicious_checkpoint(malicious_checkpoint, tiny_train_config):
    path, marker = malicious_checkpoint
    with pytest.raises(CheckpointError, match="weights_only=True"):
        train(tiny_train_config(f"ckpt_path={path}"))
    assert not marker.exists()
    # and Lightning's own load behind it (what train passes: weights_only=True) refuses it too
    cfg = tiny_train_config()
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_progress_bar=False)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        trainer.fit(
            instantiate(cfg.module), datamodule=instantiate(cfg.data), ckpt_path=path, weights_only=True
        )
    assert not marker.exists()


def test_checkpoints_of_list_valued_options_hold_plain_data_only(tiny_train_config, tmp_path):
    """Hydra hands list options over as ListConfig; a checkpoint that pickles one cannot be read safely."""
    cfg = tiny_train_config("data.train_short_side=[32,48]", "test=false")
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    checkpoint = read_checkpoint(last)  # weights_only=True: any non-plain object would fail here
    assert checkpoint["datamodule_hyper_parameters"]["train_short_side"] == [32, 48]
