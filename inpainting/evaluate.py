"""``python -m inpainting.evaluate``: every method, the same images and masks, one table.

Thin Hydra entry point: picks the images (a data config's split or user pairs), attaches the named
mask sets, runs :mod:`inpainting.evaluation.evaluator` and writes :mod:`inpainting.evaluation.report` outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from inpainting.config import exit_on_user_error
from inpainting.evaluation.evaluator import (
    EvalImage,
    FeatureMetrics,
    attach_mask_sets,
    evaluate,
    load_images,
    load_pairs,
)
from inpainting.evaluation.mask_sets import read_image_mask_pairs
from inpainting.evaluation.methods import build_methods
from inpainting.evaluation.report import plot_metrics_vs_area, summary_markdown, write_csv, write_grids
from inpainting.models.vgg import VGG16Features, default_vgg16_weights_path

log = logging.getLogger(__name__)
SPLITS = ("all", "train", "val", "test")


class MissingWeightsError(FileNotFoundError):
    """A standard metric was asked for but its weights (or package) are not here."""


def select_images(cfg: DictConfig) -> list[EvalImage]:
    if cfg.get("pairs_root"):
        return load_pairs(read_image_mask_pairs(cfg.pairs_root), cfg.image_size)
    if cfg.split not in SPLITS:
        raise ValueError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    splits = datamodule.splits
    paths = (
        [p for s in ("train", "val", "test") for p in splits[s]] if cfg.split == "all" else splits[cfg.split]
    )
    if not paths:
        raise ValueError(f"the {cfg.split} split of the data config has no images")
    if cfg.get("max_images"):
        paths = paths[: cfg.max_images]
    images = load_images(paths, cfg.image_size)
    attach_mask_sets(images, list(cfg.mask_sets), cfg.masks_per_image, cfg.mask_seed)
    return images


def feature_metrics(cfg: DictConfig) -> FeatureMetrics | None:
    if cfg.get("fid_inception_weights"):
        path = Path(cfg.fid_inception_weights)
        if not path.is_file():
            raise MissingWeightsError(
                f"fid_inception_weights={path}: file not found. Standard FID needs torch-fidelity's Inception "
                "weights (pt_inception-2015-12-05-6726825d.pth) at that path; or drop the option to use the "
                "always-available, non-standard VGG16 feature FID"
            )
        raise MissingWeightsError(
            "standard Inception FID needs the torch-fidelity package, which needs torchvision; torchvision "
            "cannot be installed beside the CPU torch build this project uses (see README). Drop "
            "fid_inception_weights to use the non-standard VGG16 feature FID"
        )
    if cfg.get("lpips"):
        raise MissingWeightsError(
            "standard LPIPS needs torchvision and its pretrained AlexNet/VGG weights, which cannot be installed "
            "or downloaded here; the non-standard VGG16 feature distance is reported instead (set lpips=false)"
        )
    if cfg.get("vgg_weights") is None:
        return None
    weights = default_vgg16_weights_path() if cfg.vgg_weights == "default" else cfg.vgg_weights
    return FeatureMetrics(VGG16Features(layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3"), weights=weights))


def run(cfg: DictConfig) -> dict[str, Path]:
    """Evaluate and write the outputs into ``paths.output_dir``; return their paths."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = build_methods(list(cfg.methods), cfg.device)
    features = feature_metrics(cfg)
    images = select_images(cfg)
    log.info("evaluating %d methods on %d images", len(methods), len(images))
    rows, grids = evaluate(images, methods, features, cfg.batch_size, cfg.sample_rows)
    label = features.distance_label if features else None
    fid = features.fid() if features else None
    files = {
        "results": out / "results.csv",
        "summary": out / "summary.md",
        "plot": out / "metrics_vs_area.png",
    }
    write_csv(rows, files["results"])
    files["summary"].write_text(summary_markdown(rows, label, fid, title=", ".join(m.name for m in methods)))
    plot_metrics_vs_area(rows, files["plot"], label)
    grid_paths = write_grids(grids, out / "samples")
    (out / "fid.json").write_text(
        json.dumps({"label": features.fid_label, "fid": fid} if fid else {}, indent=2)
    )
    _log_to_wandb(cfg, rows, files, grid_paths)
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return files


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


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    log.info("config:\n%s", OmegaConf.to_yaml(cfg))
    with exit_on_user_error():
        run(cfg)


if __name__ == "__main__":
    main()
