"""Where ``predict`` writes: (image, mask) -> output jobs for a file or a folder, checked before any write.

Pairing follows :mod:`inpainting.data.images` (``<stem>_mask*`` beside the image) or, with a mask folder,
:func:`inpainting.data.datasets.match_mask_files` (the file of the same name in a mirrored folder); an image with
several ``_mask`` files gets one output per mask, named after the mask.

Nothing is overwritten by accident: every output path is planned first, and an output that would replace an input,
another output (``x.jpg`` and ``x.png`` both giving ``x.png``) or an existing file is refused before anything is
written, naming both files (``overwrite=True`` allows replacing existing files, never an input). An output folder
inside the input folder is not searched for inputs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from inpainting.data.datasets import match_mask_files
from inpainting.data.images import (
    IMAGE_EXTENSIONS,
    MASK_TAG,
    NoImagesFoundError,
    is_image_file,
    list_images,
    split_images_and_masks,
)
from inpainting.errors import ConfigError, UserError

log = logging.getLogger(__name__)


class OutputError(UserError, OSError):
    """An output file or folder that cannot be created or written."""


@dataclass
class Job:
    image: Path
    mask: Path
    output: Path


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


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, following links; None when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def check_collisions(jobs: list[Job], inputs: list[Path], overwrite: bool = False) -> None:
    """Before anything is written: no output may be an input (by identity: a link or another spelling counts),
    nor another job's output, nor (unless ``overwrite``) an existing file. The error names both files."""
    input_ids = {fid: p for p in inputs if (fid := file_id(p)) is not None}
    planned: dict[str, Job] = {}
    found: list[str] = []
    for job in jobs:
        # casefold: on a case-insensitive file system (macOS, Windows) X.png and x.png are one file
        key = os.path.realpath(job.output).casefold()
        existing = file_id(job.output)
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
