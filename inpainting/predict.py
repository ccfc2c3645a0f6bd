"""``python -m inpainting.predict input=photo.jpg mask=photo_mask.png output=out.png`` (or whole folders).

The config key is ``mask_path`` (``mask`` is the name of a Hydra config group in ``conf/``, so Hydra would read
``mask=...`` as a group choice); on the command line ``mask=...`` is accepted as an alias of ``mask_path=...``.

Thin Hydra entry point: finds the (image, mask) pairs, loads the model (:func:`inpainting.inference.load_model`)
and runs :class:`inpainting.inference.Inpainter` on each pair with a progress bar. Masks: white = missing
(``threshold``, ``invert``). In a folder, each image's mask is ``<name>_mask*.png`` beside it or, with
``mask_path=FOLDER``, the file of the same name in a mirrored folder; an image with several ``_mask`` files gets one
output per mask, named after the mask. A file that cannot be read (or has no mask, or a mask of another size) is
reported and skipped; the rest is processed, and the command exits with status 1 at the end.

Nothing is overwritten by accident: every output path is planned first, and an output that would replace an input,
another output (``x.jpg`` and ``x.png`` both giving ``x.png``) or an existing file stops the run before anything is
written, naming both files. ``overwrite=true`` allows replacing existing files (a previous run's outputs), never an
input. An output folder inside the input folder is not searched for inputs.

A video file or a folder of frames (``video=auto|true|false``) goes to :mod:`inpainting.inference.video`
(streamed through overlapping windows; output ``.mp4``/``.avi`` or a PNG frame folder).

Outputs are RGB (greyscale, RGBA and 16-bit inputs are read as 8-bit RGB by ``read_image_rgb``). Written as PNG,
every pixel outside the holes equals the decoded input exactly; a JPEG/WebP output re-encodes it lossily.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.data.datasets import match_mask_files
from inpainting.data.images import (
    IMAGE_EXTENSIONS,
    MASK_TAG,
    ImageReadError,
    NoImagesFoundError,
    check_mask_size,
    is_image_file,
    list_images,
    read_image_rgb,
    read_mask,
    split_images_and_masks,
)
from inpainting.errors import ConfigError, InputError, UserError
from inpainting.inference import Inpainter, load_model
from inpainting.inference.video import is_video_input, predict_video_from_config
from inpainting.resources import conf_dir

log = logging.getLogger(__name__)

LOSSY = (".jpg", ".jpeg", ".webp")


class OutputError(UserError, OSError):
    """An output file or folder that cannot be created or written."""


@dataclass
class Job:
    image: Path
    mask: Path
    output: Path


@dataclass
class PredictResult:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input file, reason)


# ------------------------------------------------------------------------------------------------------------
# finding pairs
# ------------------------------------------------------------------------------------------------------------


def masks_beside(image: Path, candidates: list[Path] | None = None) -> list[Path]:
    """``<stem>_mask*.<image ext>`` files next to ``image``, sorted (the pairing rule of ``split_images_and_masks``)."""
    files = candidates if candidates is not None else sorted(image.parent.iterdir())
    files = [p for p in files if is_image_file(p) and p.parent == image.parent]
    return split_images_and_masks([*files, image])[1].get(image, [])


def _output_name(image: Path, mask: Path, several: bool) -> str:
    return f"{(mask if several else image).stem}.png"


def plan_folder(root: Path, mask_root: Path | None, output: Path) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Jobs for every image under ``root`` (outputs mirrored under ``output``) and the images without a mask.

    An ``output`` folder inside ``root`` is left out of the search: its files are earlier results, not inputs.
    """
    files = list_images(root)
    real_root, real_output = Path(os.path.realpath(root)), Path(os.path.realpath(output))
    if real_output != real_root and real_output.is_relative_to(real_root):
        kept = [p for p in files if not Path(os.path.realpath(p)).is_relative_to(real_output)]
        if len(kept) < len(files):
            log.info(
                "not reading the %d file(s) in the output folder %s as inputs", len(files) - len(kept), output
            )
        if not kept:
            raise NoImagesFoundError(f"no images under {root} outside the output folder {output}")
        files = kept
    beside = mask_root is None or mask_root.resolve() == root.resolve()
    images, by_image = split_images_and_masks(files) if beside else (files, {})
    if not images:
        raise FileNotFoundError(f"no images under {root} (only files named *{MASK_TAG}*, which are masks)")
    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    if beside:
        for image in images:
            masks = by_image.get(image, [])
            if not masks:
                problems.append((image, f"no mask: expected {image.stem}{MASK_TAG}*.png beside it"))
            for mask in masks:
                rel = image.parent.relative_to(root) / _output_name(image, mask, len(masks) > 1)
                jobs.append(Job(image, mask, output / rel))
        return jobs, problems
    try:
        masks = match_mask_files(images, root, mask_root)
    except FileNotFoundError:  # some images lack a mask: pair one by one to report each
        masks = []
        for image in images:
            try:
                masks.extend(match_mask_files([image], root, mask_root))
            except FileNotFoundError as error:
                masks.append(None)
                problems.append((image, str(error)))
    for image, mask in zip(images, masks, strict=True):
        if mask is not None:
            jobs.append(Job(image, mask, output / image.parent.relative_to(root) / f"{image.stem}.png"))
    return jobs, problems


def plan_file(image: Path, mask: Path | None, output: Path) -> list[Job]:
    """One image: its mask (given, or ``<stem>_mask*`` beside it) and its output file."""
    if not image.is_file():
        raise FileNotFoundError(f"input={image}: no such file or folder")
    if mask is None:
        found = masks_beside(image)
        if not found:
            raise FileNotFoundError(
                f"no mask for {image}: pass mask_path=PATH or put {image.stem}{MASK_TAG}.png beside it"
            )
        if len(found) > 1:
            log.warning("%s has %d masks beside it; using %s", image, len(found), found[0].name)
        mask = found[0]
    elif mask.is_dir():
        (mask,) = match_mask_files([image], image.parent, mask)
    elif not mask.is_file():
        raise FileNotFoundError(f"mask_path={mask}: no such file")
    if output.is_dir() or str(output).endswith(os.sep) or not output.suffix:
        output = output / f"{image.stem}.png"
    return [Job(image, mask, output)]


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, following links; None when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def check_collisions(jobs: list[Job], inputs: list[Path], overwrite: bool = False) -> None:
    """Before anything is written: no output may be an input (by identity: a link or another spelling counts),
    nor another job's output, nor (unless ``overwrite``) an existing file. The error names both files."""
    input_ids = {fid: p for p in inputs if (fid := _file_id(p)) is not None}
    planned: dict[str, Job] = {}
    found: list[str] = []
    for job in jobs:
        # casefold: on a case-insensitive file system (macOS, Windows) X.png and x.png are one file
        key = os.path.realpath(job.output).casefold()
        existing = _file_id(job.output)
        if existing in input_ids:
            hit = input_ids[existing]
            whose = "" if hit == job.image else f" (the result for {job.image})"
            found.append(
                f"output {job.output}{whose} would overwrite an input file, {hit}; choose another output"
            )
        elif key in planned:
            found.append(
                f"{planned[key].image} and {job.image} would both be written to {job.output}; "
                "rename one of them or use separate output folders"
            )
        elif os.path.lexists(job.output) and not overwrite:
            found.append(
                f"output {job.output} (the result for {job.image}) already exists; "
                "pass overwrite=true to replace it, or choose another output"
            )
        planned.setdefault(key, job)
    if found:
        more = f" (and {len(found) - 1} more collision(s))" if len(found) > 1 else ""
        raise OutputError(found[0] + more)


def check_output_file(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written (bad extension, parent not creatable)."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(f"output={path}: unknown image extension; use one of {', '.join(IMAGE_EXTENSIONS)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {path.parent}: {error}") from error
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write into the output folder {path.parent}: permission denied")
    if path.is_dir():
        raise OutputError(f"output {path} is a folder, not a file name")


# ------------------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------------------


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
    caller instead of logged here and again there."""
    result = PredictResult()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("inpainting", total=len(jobs))
        for job in jobs:
            bar.update(task, description=f"inpainting {job.image.name}")
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
            bar.advance(task)
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


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="predict")
def main(cfg: DictConfig) -> None:
    print_run_header(cfg)
    with exit_on_user_error():
        result = run(cfg)
    if result.failed:
        sys.exit(1)


def alias_mask_argument(argv: list[str]) -> list[str]:
    """``mask=X`` -> ``mask_path=X``: the issue's spelling, which Hydra would take for the ``mask`` config group."""
    return [f"mask_path={arg[5:]}" if arg.startswith("mask=") else arg for arg in argv]


if __name__ == "__main__":
    sys.argv = alias_mask_argument(sys.argv)
    exit_on_unknown_key("predict")
    main()
