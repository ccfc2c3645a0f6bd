"""What ``python -m inpainting.evaluate`` runs: every method, the same images and masks, one table.

:func:`run` picks the images (a data config's split, built through its datamodule, or user pairs from
``pairs_root``, read without it), attaches the named mask sets (a video data config goes to
:mod:`inpainting.evaluation.video_evaluator` instead), runs :mod:`inpainting.evaluation.evaluator` and writes
:mod:`inpainting.evaluation.report` outputs. ``protocol=lama`` (conf/protocol/) presets a paper's mask sets and
adds ``protocol.md`` in its table layout. The datamodules (Lightning) and wandb are imported only when the
config needs them, so classical methods on a pairs folder run without the training stack.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from inpainting.errors import ConfigError
from inpainting.evaluation.evaluator import (
    EvalImage,
    FeatureMetrics,
    attach_mask_sets,
    evaluate,
    load_images,
    load_pairs,
)
from inpainting.evaluation.mask_sets import read_image_mask_pairs
from inpainting.evaluation.methods import Method, build_methods
from inpainting.evaluation.metrics import FID_MIN_SAMPLES, VGG_FID_MIN_SAMPLES
from inpainting.evaluation.report import (
    fid_counts,
    plot_metrics_vs_area,
    protocol_markdown,
    reportable_fid,
    summary_markdown,
    write_csv,
    write_grids,
)
from inpainting.evaluation.standard import MissingWeightsError, StandardMetrics, load_standard_metrics
from inpainting.models.vgg import DISTANCE_LAYERS, VGG16Features, default_vgg16_weights_path

log = logging.getLogger(__name__)
SPLITS = ("all", "train", "val", "test")
#: data targets known not to be video: telling them apart needs no import of their datamodule (nor Lightning)
IMAGE_DATAMODULES = frozenset({"inpainting.data.datamodule.InpaintingDataModule"})
__all__ = ["MissingWeightsError", "is_video_data", "run"]


def is_video_data(data: DictConfig | None) -> bool:
    """True when ``data`` configures a video datamodule (see :func:`video_evaluator.is_video_data`); the image
    datamodule is recognised by its target's name, so an image evaluation does not import Lightning for this."""
    target = (data or {}).get("_target_") if isinstance(data, DictConfig | dict) else None
    if not target or str(target) in IMAGE_DATAMODULES:
        return False
    from inpainting.evaluation.video_evaluator import is_video_data as names_video_datamodule

    return names_video_datamodule(data)


def select_images(cfg: DictConfig) -> list[EvalImage]:
    if cfg.get("pairs_root"):
        pairs = read_image_mask_pairs(cfg.pairs_root)
        pairs = pairs[: cfg.max_images] if cfg.get("max_images") else pairs
        return load_pairs(pairs, cfg.image_size, Path(cfg.pairs_root).expanduser())
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    splits = datamodule.splits
    paths = (
        [p for s in ("train", "val", "test") for p in splits[s]] if cfg.split == "all" else splits[cfg.split]
    )
    if not paths:
        raise ConfigError(f"the {cfg.split} split of the data config has no images")
    if cfg.get("max_images"):
        paths = paths[: cfg.max_images]
    images = load_images(paths, cfg.image_size)
    attach_mask_sets(images, list(cfg.mask_sets), cfg.masks_per_image, cfg.mask_seed)
    return images


def feature_metrics(cfg: DictConfig) -> FeatureMetrics | None:
    """The non-standard VGG16 distance and feature FID (``vgg_weights``), labelled as such everywhere."""
    if cfg.get("vgg_weights") is None:
        return None
    weights = default_vgg16_weights_path() if cfg.vgg_weights == "default" else cfg.vgg_weights
    return FeatureMetrics(VGG16Features(layers=DISTANCE_LAYERS, weights=weights))


def standard_metrics(cfg: DictConfig) -> StandardMetrics:
    """FID and LPIPS when their weights are found or fetched (``auto``), required (``true``) or off (``false``)."""
    download = cfg.get("download_weights", True)
    if not isinstance(download, bool):
        raise ConfigError(f"download_weights={download!r}: expected true or false")
    return load_standard_metrics(
        cfg.get("fid", "auto"),
        cfg.get("lpips", "auto"),
        cfg.get("fid_weights"),
        {"alex": cfg.get("lpips_alex_weights"), "vgg": cfg.get("lpips_vgg_weights")},
        download=download,
    )


def sample_floor(cfg: DictConfig, option: str, default: int) -> int:
    """``fid_min_samples`` / ``vgg_fid_min_samples``: a positive whole number of pairs."""
    value = cfg.get(option, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{option}={value!r}: expected a positive whole number of pairs (default {default})"
        )
    return value


def worker_count(setting: object) -> int:
    """``workers``: ``auto`` = one process per CPU core; 0 or 1 = in this process."""
    if str(setting) == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, int(setting))


def header_notes(methods: list[Method], standard: StandardMetrics) -> list[str]:
    """How networks were applied and where the standard metrics' weights came from, for the table header."""
    notes = [f"{m.name}: {m.inpaint.describe()}" for m in methods if m.kind == "model"]
    if standard.sources:
        notes.append("standard metric weights: " + ", ".join(f"{k} {v}" for k, v in standard.sources.items()))
    else:
        notes.append(
            "FID/LPIPS: no weights found or downloaded (see the log, README › Evaluate), columns left out"
        )
    return notes


def run(cfg: DictConfig) -> dict[str, Path]:
    """Evaluate and write the outputs into ``paths.output_dir``; return their paths."""
    if is_video_data(cfg.get("data")):  # data=video: clips, clip masks, temporal metrics
        from inpainting.evaluation.video_evaluator import run_video

        return run_video(cfg, worker_count(cfg.get("workers", "auto")))
    fid_floor = sample_floor(cfg, "fid_min_samples", FID_MIN_SAMPLES)
    vgg_fid_floor = sample_floor(cfg, "vgg_fid_min_samples", VGG_FID_MIN_SAMPLES)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = build_methods(
        list(cfg.methods),
        cfg.device,
        OmegaConf.to_container(cfg.get("inference") or {}),
        bool(cfg.get("trust_code")),
    )
    features = feature_metrics(cfg)
    standard = standard_metrics(cfg)
    images = select_images(cfg)
    workers = worker_count(cfg.get("workers", "auto"))
    log.info("evaluating %d methods on %d images (%d baseline workers)", len(methods), len(images), workers)
    result = evaluate(images, methods, features, cfg.batch_size, cfg.sample_rows, standard, workers)
    rows = result.rows
    label = features.distance_label if features else None
    fid = features.fid() if features else None
    notes = header_notes(methods, standard)
    if result.left_out:
        more = f"; and {len(result.left_out) - 10} more (see the log)" if len(result.left_out) > 10 else ""
        notes.append(f"left out ({len(result.left_out)} pairs): " + "; ".join(result.left_out[:10]) + more)
    files = {
        "results": out / "results.csv",
        "summary": out / "summary.md",
        "plot": out / "metrics_vs_area.png",
    }
    write_csv(rows, files["results"])
    title = ", ".join(m.name for m in methods)
    files["summary"].write_text(
        summary_markdown(rows, label, fid, title, result.fid, notes, fid_floor, vgg_fid_floor)
    )
    plot_metrics_vs_area(rows, files["plot"], label)
    grid_paths = write_grids(result.grids, out / "samples")
    (out / "fid.json").write_text(
        json.dumps(fid_json(rows, fid, features, result.fid, fid_floor, vgg_fid_floor), indent=2)
    )
    protocol = cfg.get("protocol")
    if protocol:
        files["protocol"] = out / "protocol.md"
        files["protocol"].write_text(
            protocol_markdown(
                rows, result.fid, protocol.name, list(protocol.metrics), [protocol.note, *notes], fid_floor
            )
        )
    _log_to_wandb(cfg, rows, files, grid_paths)
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return files


def fid_json(
    rows: list[dict],
    fid: dict[str, float] | None,
    features: FeatureMetrics | None,
    standard_fid: dict[tuple[str, str], float],
    fid_floor: int,
    vgg_fid_floor: int,
) -> dict:
    """fid.json: the Fréchet distances on at least their floor of pairs; the others by name with their n only."""
    counts = fid_counts(rows)
    out: dict = {}
    if fid and features is not None:
        kept, withheld = reportable_fid(fid, counts, vgg_fid_floor)
        out |= {"label": features.fid_label, "fid": kept, "min_samples": vgg_fid_floor}
        out |= {"not_reported_n": withheld} if withheld else {}
    if standard_fid:
        kept, withheld = reportable_fid(standard_fid, counts, fid_floor)
        out["inception_fid"] = {f"{method}/{mask_set}": value for (method, mask_set), value in kept.items()}
        out["inception_fid_min_samples"] = fid_floor
        if withheld:
            out["inception_fid_not_reported_n"] = {f"{m}/{s}": n for (m, s), n in withheld.items()}
    return out


def _log_to_wandb(cfg: DictConfig, rows: list[dict], files: dict[str, Path], grids: list[Path]) -> None:
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values()]
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        import wandb

        columns = list(rows[0])
        logger.experiment.log(
            {
                "eval/results": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows]),
                "eval/metrics_vs_area": wandb.Image(str(files["plot"])),
                **{f"eval/{p.stem}": wandb.Image(str(p)) for p in grids},
            }
        )
        wandb.finish()
