"""The predict loop behind ``python -m inpainting.predict``: plan, check the outputs, load the model, inpaint.

:func:`run` takes the composed ``conf/predict.yaml``; the jobs come from :mod:`inpainting.data.predict_plan`,
a video or frame folder goes to :mod:`inpainting.inference.video`. A bad input is reported and skipped in a
folder (the result lists it in ``failed``); one input file raises at once. Outputs are RGB; written as PNG, every
pixel outside the holes equals the decoded input exactly (a JPEG/WebP output re-encodes it lossily).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from inpainting.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    check_mask_size,
    read_image_rgb,
    read_mask,
)
from inpainting.data.predict_plan import (
    Job,
    OutputError,
    check_collisions,
    check_output_file,
    plan_file,
    plan_folder,
)
from inpainting.errors import ConfigError, InputError
from inpainting.inference.inpainter import Inpainter, load_model
from inpainting.inference.video import FrameProgress, is_video_input, predict_video_from_config

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

#: outside a terminal, a progress line every this many images of a folder
LOG_EVERY = 20

LOSSY = (".jpg", ".jpeg", ".webp")


@dataclass
class PredictResult:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input file, reason)


def read_pair(job: Job, threshold: int, invert: bool) -> tuple[np.ndarray, np.ndarray]:
    """The image as RGB uint8 and its hole map (1 = missing); a size mismatch names both files and sizes."""
    image = read_image_rgb(job.image)
    mask = read_mask(job.mask, threshold=threshold)
    if invert:
        mask = 1 - mask
    check_mask_size(image, mask, job.image, job.mask)
    return image, mask


def write_image(image: np.ndarray, path: Path, overwrite: bool = False) -> None:
    """Save ``image``; without ``overwrite`` the file is created exclusively, so a file that appeared since the
    collision check is never replaced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb" if overwrite else "xb") as file:
            Image.fromarray(image).save(file, format=Image.registered_extensions()[path.suffix.lower()])
    except FileExistsError as error:
        raise OutputError(f"output {path} appeared during the run; not replacing it") from error
    except OSError as error:
        raise OutputError(f"cannot write output {path}: {error}") from error


def predict_jobs(
    jobs: list[Job],
    inpainter: Inpainter,
    threshold: int = 127,
    invert: bool = False,
    progress: bool = True,
    keep_going: bool = True,
    overwrite: bool = False,
) -> PredictResult:
    """Run every job; a bad input is recorded in ``failed`` and the rest goes on (a write error stops).

    ``keep_going=False`` (one input file): a bad input raises :class:`InputError` at once, reported once by the
    caller instead of logged here and again there. ``progress``: a bar in a terminal, elsewhere a log line every
    :data:`LOG_EVERY` images (one input: no progress at all)."""
    result = PredictResult()
    bar = FrameProgress(len(jobs), progress and len(jobs) > 1, every=LOG_EVERY, unit="image")
    try:
        for job in jobs:
            try:
                image, mask = read_pair(job, threshold, invert)
                if mask.any():
                    filled = inpainter(image, mask)
                else:  # not through the inpainter, which would log the same at INFO
                    filled = image
                    rule = "at or below" if invert else "above"
                    log.warning(
                        "%s: the mask %s has no hole pixels (no grey level %s threshold=%d%s); "
                        "writing the image unchanged",
                        job.image,
                        job.mask,
                        rule,
                        threshold,
                        ", invert=true" if invert else "",
                    )
            except (ImageReadError, ValueError) as error:
                if not keep_going:
                    raise InputError(str(error)) from error
                log.warning("skipping %s: %s", job.image, error)
                result.failed.append((job.image, str(error)))
            else:
                write_image(filled, job.output, overwrite)
                result.written.append(job.output)
            bar.advance()
    finally:
        bar.close()
    return result


def run(cfg: DictConfig) -> PredictResult:
    """Plan, check the outputs, load the model, inpaint; returns what was written and what failed."""
    source = Path(str(cfg.input)).expanduser()
    mask = Path(str(cfg.mask_path)).expanduser() if cfg.get("mask_path") else None
    output = Path(str(cfg.output)).expanduser() if cfg.get("output") else Path(cfg.paths.output_dir)
    overwrite = bool(cfg.get("overwrite", False))
    if not 0 <= int(cfg.threshold) <= 255:
        raise ConfigError(f"threshold={cfg.threshold} must be in 0..255")
    if is_video_input(source, mask, output if cfg.get("output") else None, cfg.get("video", "auto")):
        return PredictResult(written=[predict_video_from_config(cfg).output])  # inpainting.inference.video
    if source.is_dir():
        if mask is not None and not mask.is_dir():
            raise ConfigError(
                f"input={source} is a folder, so mask_path must be a folder of masks too, got {mask}"
            )
        if output.suffix and output.suffix.lower() in IMAGE_EXTENSIONS:
            raise ConfigError(
                f"input={source} is a folder, so output must be a folder, got the file name {output}"
            )
        jobs, problems = plan_folder(source, mask, output)
    else:
        jobs, problems = plan_file(source, mask, output), []
    inputs = [p for job in jobs for p in (job.image, job.mask)] + [p for p, _ in problems]
    check_collisions(jobs, inputs, overwrite)
    if source.is_dir():
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create the output folder {output}: {error}") from error
    if len(jobs) == 1:
        check_output_file(jobs[0].output)
        if jobs[0].output.suffix.lower() in LOSSY:
            log.warning(
                "%s is a lossy format: known pixels will not be bit-identical (use .png)", jobs[0].output
            )
    for image, reason in problems:
        log.warning("skipping %s: %s", image, reason)

    model = load_model(cfg.get("ckpt_path"), cfg.get("device", "cpu"), trust_code=bool(cfg.get("trust_code")))
    log.info("model: %s", model.describe())
    inpainter = Inpainter(model, cfg.strategy, cfg.max_side, cfg.margin)
    result = predict_jobs(
        jobs,
        inpainter,
        int(cfg.threshold),
        bool(cfg.invert),
        bool(cfg.get("progress", True)),
        keep_going=source.is_dir(),
        overwrite=overwrite,
    )
    result.failed[:0] = problems
    log.info("wrote %d image(s) to %s", len(result.written), output)
    if result.failed:
        log.warning(
            "%d input(s) failed:\n%s",
            len(result.failed),
            "\n".join(f"  {p}: {why}" for p, why in result.failed),
        )
    return result
