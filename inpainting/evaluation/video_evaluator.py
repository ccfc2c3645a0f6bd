"""Video evaluation: every method on the same clips and the same fixed clip masks, one row per result.

``python -m inpainting.evaluate data=video data.root=DIR split=test methods=[telea,temporal_copy,default]``
(:func:`run_video`, called by :mod:`inpainting.evaluate` when the data config is a
:class:`~inpainting.data.video_datamodule.VideoDataModule`):

* **Clips**: the chosen split's videos (the datamodule's split by video, ``val_root`` / ``test_root`` included;
  ``split=all``: every video of every split) and, with ``synthetic_motion``, that split's photos under seeded camera
  paths. They are the datamodule's own evaluation clips (:class:`~inpainting.data.video_datasets.VideoClipDataset`
  with its ``mask_seed``): ``clips_per_video`` evenly spaced clips of ``clip_length`` frames per video (camera paths
  per photo), centre-cropped to ``image_size``, identical on every run.
* **Masks**: not the datamodule's; each clip gets masks ``j*k .. j*k+k-1`` (``k = masks_per_image``) of each fixed,
  seeded video mask set (``video_mask_sets``: :func:`~inpainting.evaluation.video_mask_sets.video_mask_set`, the
  hole-area buckets by mean fraction over the frames, ``mask_seed``).
* **Methods** (:func:`build_video_methods`): video baselines by name
  (:data:`~inpainting.evaluation.video_baselines.VIDEO_BASELINES`); ``default`` (the shipped image model) and image
  checkpoints frame by frame on predict's path (:class:`FrameModel`); checkpoints of a video network
  (:class:`~inpainting.models.sa_unet_video.SAUNetVideo`) on the whole clip at once (:class:`ClipModel`). Every
  method gets the clip with its hole pixels zeroed, and its output's known pixels are replaced by the ground truth.
* **Metrics** (:mod:`inpainting.evaluation.video_metrics`): PSNR over the hole pixels of all frames, the image
  evaluator's SSIM averaged over frames, and the flow warping error under the ground truth's flow, restricted to the
  holes; ``warp_error_gt`` is the ground truth's own (the floor).
* **Outputs**: ``results.csv`` (one row per clip x mask x method) and ``summary.md`` (per hole-area bucket, and
  paired differences with 95% intervals).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from inpainting.data.video_datamodule import VideoDataModule
from inpainting.data.video_datasets import VideoClipDataset
from inpainting.errors import ConfigError, InputError
from inpainting.evaluation.evaluator import (
    BaselinePool,
    ProgressLog,
    check_eval_size,
    display_names,
)
from inpainting.evaluation.methods import (
    CKPT_PREFIX,
    DEFAULT_METHOD,
    build_method,
    check_model_name,
    check_unique_names,
)
from inpainting.evaluation.metrics import AREA_LABELS, area_bucket
from inpainting.evaluation.report import _table, paired_table, write_csv
from inpainting.evaluation.video_baselines import VIDEO_BASELINES, get_video_baseline
from inpainting.evaluation.video_mask_sets import video_mask_set
from inpainting.evaluation.video_metrics import clip_ssim, hole_psnr, truth_flows, warp_error
from inpainting.inference.checkpoint import load_generator, resolve_weights
from inpainting.inference.inpainter import (
    Inpainter,
    _resolve_device,
    detect_kind,
    pad_multiple,
    to_model_input,
    to_uint8,
)
from inpainting.inference.video import default_model_path
from inpainting.models.sa_unet_video import SAUNetVideo
from inpainting.resources import conf_dir

log = logging.getLogger(__name__)

SPLITS = ("all", "train", "val", "test")
METRICS = ("psnr", "ssim", "warp_error")
#: what identifies one scored item across methods (the pairing of the paired differences)
ITEM_KEYS = ("clip", "mask_set", "mask_index")
TITLES_VIDEO = {
    "psnr": "PSNR inside the holes, all frames (dB) ↑",
    "ssim": "SSIM, mean over frames ↑",
    "warp_error": "Warping error inside the holes, ground-truth flow ↓",
}
GT_ROW = "ground truth (floor)"
PER_FRAME_BASELINES = ("telea", "navier_stokes", "harmonic", "biharmonic")
#: evaluate.yaml options that only mean something for images: refused with data=video when set
IMAGE_ONLY = ("pairs_root", "protocol")

VideoFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class EvalClip:
    """One evaluation clip: uint8 ``T x H x W x 3`` frames and, per mask set, its ``T x H x W`` masks."""

    name: str  # source (relative path without extension) + "@start" (video) or "#motionK" (photo)
    frames: np.ndarray
    masks: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class VideoMethod:
    name: str
    inpaint: VideoFn  # (uint8 T x H x W x 3 with holes zeroed, uint8 T x H x W mask) -> uint8 T x H x W x 3
    kind: str  # "per-frame baseline" | "temporal baseline" | "per-frame model" | "clip model"
    note: str = ""  # how it was applied, for the table header


# ---------------------------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------------------------


class FrameModel:
    """An image model on every frame, on predict's path (:meth:`~inpainting.inference.Inpainter.fill_batch`)."""

    def __init__(self, inpainter: Inpainter, batch_size: int = 8) -> None:
        self.inpainter, self.batch_size = inpainter, batch_size

    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.inpainter.fill_batch(frames, (np.asarray(mask) != 0).astype(np.uint8), self.batch_size)


class ClipModel:
    """A video network on the whole clip at once: ``1 x T x 3 x H x W``, padded to :func:`pad_multiple` (the border
    shown as a hole, as :class:`~inpainting.inference.PaddedGenerator` does for images) and cropped back."""

    def __init__(self, net: torch.nn.Module, device: str = "cpu") -> None:
        self.device = _resolve_device(device)
        self.net = net.to(self.device).eval()
        self.multiple = pad_multiple(net)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        holes = np.asarray(mask) != 0
        image, hole = to_model_input(
            np.asarray(frames), holes
        )  # T x 3 x H x W in [-1, 1] (holes zeroed), T x 1
        height, width = image.shape[-2:]
        pad = (0, -width % self.multiple, 0, -height % self.multiple)
        x = F.pad(torch.from_numpy(image)[None], pad).to(self.device)
        m = F.pad(torch.from_numpy(hole)[None], pad, value=1.0).to(self.device)
        out = self.net(x, m)[0, ..., :height, :width].float().cpu().numpy()
        return np.where(holes[..., None], to_uint8(out), frames)


def _video_network(ckpt: str) -> tuple[torch.nn.Module, dict] | None:
    """The network and config of a checkpoint / generator file when it holds a video network, else None
    (TorchScript / ONNX exports take images; an image network is loaded again on predict's path)."""
    path = resolve_weights(ckpt)
    if detect_kind(path) != "checkpoint":
        return None
    net, config = load_generator(path)
    return (net, config) if isinstance(net, SAUNetVideo) else None


#: the shipped image model frame by frame, when ``default`` is the shipped video model
IMAGE_DEFAULT_METHOD = "default_image"


def build_video_method(
    spec: str, device: str = "cpu", inference: dict | None = None, batch_size: int = 8
) -> VideoMethod:
    """A video baseline name, ``default``, or ``[NAME@]ckpt:PATH`` (a video network runs on whole clips)."""
    name, _, rest = spec.partition("@") if "@" in spec else ("", "", spec)
    if rest == DEFAULT_METHOD and default_model_path() != resolve_weights(None):  # the shipped video model
        rest, name = CKPT_PREFIX + str(default_model_path()), name or DEFAULT_METHOD
    elif rest == IMAGE_DEFAULT_METHOD:  # the shipped image model, frame by frame
        spec, name = (f"{name}@" if name else f"{IMAGE_DEFAULT_METHOD}@") + DEFAULT_METHOD, name or rest
        rest = DEFAULT_METHOD
    if rest in VIDEO_BASELINES:
        kind = "per-frame baseline" if rest in PER_FRAME_BASELINES else "temporal baseline"
        return VideoMethod(name or rest, get_video_baseline(rest), kind)
    if rest.startswith(CKPT_PREFIX):
        ckpt = rest[len(CKPT_PREFIX) :]
        video = _video_network(ckpt)
        if video is not None:
            net, config = video
            name = name or Path(ckpt).resolve().parent.parent.name or Path(ckpt).stem
            if isinstance(config.get("model"), dict):
                check_model_name(name, ckpt, config["model"])
            model = ClipModel(net, device)
            note = f"whole clip at once (video network, padded to a multiple of {model.multiple})"
            if not net.temporal:  # the per-frame ablation: each frame attends to itself only
                return VideoMethod(
                    name, model, "per-frame model", note + ", temporal=false: frames independent"
                )
            return VideoMethod(name, model, "clip model", note)
    if rest == DEFAULT_METHOD or rest.startswith(CKPT_PREFIX):
        method = build_method(spec, device, inference)
        note = f"frame by frame, {method.inpaint.describe()}"
        return VideoMethod(method.name, FrameModel(method.inpaint, batch_size), "per-frame model", note)
    raise ConfigError(
        f"unknown method {spec!r} for video: use a video baseline ({', '.join(VIDEO_BASELINES)}), "
        f"{DEFAULT_METHOD!r} (the shipped video model), {IMAGE_DEFAULT_METHOD!r} (the shipped image model, per "
        "frame) or ckpt:PATH / NAME@ckpt:PATH"
    )


def build_video_methods(
    specs: Sequence[str] | None, device: str = "cpu", inference: dict | None = None, batch_size: int = 8
) -> list[VideoMethod]:
    if not specs:
        raise ConfigError(
            f"methods is empty: give at least one, e.g. methods=[telea,temporal_copy] "
            f"(video baselines: {', '.join(VIDEO_BASELINES)})"
        )
    methods = [build_video_method(str(s), device, inference, batch_size) for s in specs]
    check_unique_names([m.name for m in methods])
    return methods


# ---------------------------------------------------------------------------------------------------------------
# clips
# ---------------------------------------------------------------------------------------------------------------


def _no_mask(rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
    """The datamodule's mask slot: evaluation masks come from the fixed sets instead."""
    return np.zeros((frames, height, width), np.uint8)


def split_sources(data: DictConfig, split: str) -> tuple[VideoDataModule, list[Path], list[Path]]:
    """The datamodule and the videos and photos of ``split`` (its own split logic; ``all``: every split)."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    datamodule = instantiate(data, mask_generator=None, eval_mask_generator=None)
    datamodule.mask_generator = datamodule.eval_mask_generator = _no_mask
    datamodule.prepare_data()
    # the split alone (what setup() computes first): setup("test") would also probe the test videos and warn
    # about an empty test split when another split is evaluated
    datamodule.splits = datamodule._compute_splits()
    parts = ("train", "val", "test") if split == "all" else (split,)
    videos = list(dict.fromkeys(p for s in parts for p in datamodule.splits[s]["videos"]))
    photos = list(dict.fromkeys(p for s in parts for p in datamodule.splits[s]["photos"]))
    return datamodule, videos, photos


def load_clips(
    datamodule: VideoDataModule,
    videos: list[Path],
    photos: list[Path],
    image_size: int,
    max_clips: int | None,
) -> list[EvalClip]:
    """The datamodule's deterministic evaluation clips of these sources (a clip that cannot be read is skipped)."""
    check_eval_size(image_size)
    dataset = VideoClipDataset(
        videos,
        _no_mask,
        clip_length=datamodule.clip_length,
        frame_stride=datamodule.frame_stride,
        image_size=image_size,
        mask_seed=datamodule.mask_seed,
        clips_per_video=datamodule.clips_per_video,
        photos=photos,
    )
    sources = [dataset.source_path(s) for s in range(len(dataset.videos) + len(dataset.photos))]
    names = display_names(sources) if sources else []
    clips = []
    for index in range(len(dataset) if max_clips is None else min(len(dataset), max_clips)):
        sample = dataset[index]
        if sample["index"] != index:
            continue  # its source failed while reading (logged by the dataset); another clip stood in
        source, start = dataset.locate(index)
        label = f"@{start}" if source < len(dataset.videos) else f"#motion{start}"
        frames = ((sample["image"].numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
        clips.append(EvalClip(names[source] + label, np.ascontiguousarray(frames.transpose(0, 2, 3, 1))))
    if not clips:
        raise InputError(
            f"no clip of {datamodule.clip_length} frames (frame_stride {datamodule.frame_stride}) to evaluate among "
            f"{len(videos)} videos and {len(photos)} photos of the split (see the warnings above)"
        )
    return clips


def attach_video_mask_sets(clips: list[EvalClip], names: Sequence[str], per_clip: int, seed: int) -> None:
    """Give clip j masks ``j*k .. j*k+k-1`` of each named video set: fixed, seeded, identical on every machine."""
    if isinstance(per_clip, bool) or int(per_clip) != per_clip or per_clip < 1:
        raise ConfigError(f"masks_per_image (masks per clip) must be a positive integer, got {per_clip!r}")
    if not names:
        raise ConfigError("video_mask_sets is empty: give at least one, e.g. video_mask_sets=[area_20-30]")
    frames, height, width = clips[0].frames.shape[:3]
    for name in names:
        masks = video_mask_set(name, len(clips) * per_clip, frames, height, width, seed=seed)
        for j, clip in enumerate(clips):
            clip.masks[name] = masks[j * per_clip : (j + 1) * per_clip]


# ---------------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------------


def run_video_method(
    method: VideoMethod, clips: np.ndarray, masks: np.ndarray, pool: BaselinePool
) -> np.ndarray:
    """Composites for ``N`` clips: hole pixels zeroed before the method, known pixels pasted back after it."""
    holes = masks[..., None] != 0
    visible = np.where(holes, np.uint8(0), clips)  # no method sees a hidden pixel
    if method.kind.endswith("baseline"):
        outputs = pool.map(method.inpaint, visible, masks)
    else:
        outputs = np.stack([method.inpaint(c, m) for c, m in zip(visible, masks, strict=True)])
    return np.where(holes, outputs, clips).astype(np.uint8)


def evaluate_clips(clips: list[EvalClip], methods: Sequence[VideoMethod], workers: int = 1) -> list[dict]:
    """Rows ``clip, mask_set, mask_index, hole_fraction, bucket, method, psnr, ssim, warp_error, warp_error_gt``."""
    flows = [truth_flows(clip.frames) for clip in clips]  # the ground truth's motion, once per clip
    set_names = list(clips[0].masks)
    progress = ProgressLog(
        [m.name for m in methods], [sum(len(c.masks[s]) for c in clips) for s in set_names]
    )
    pool = BaselinePool(workers)
    rows: list[dict] = []
    try:
        for set_name in set_names:
            entries = [
                (j, k, mask) for j, clip in enumerate(clips) for k, mask in enumerate(clip.masks[set_name])
            ]
            truth = np.stack([clips[j].frames for j, _, _ in entries])
            masks = np.stack([mask for _, _, mask in entries]).astype(np.uint8)
            floors = [warp_error(truth[i], flows[j], masks[i]) for i, (j, _, _) in enumerate(entries)]
            for method in methods:
                started = time.perf_counter()
                outputs = run_video_method(method, truth, masks, pool)
                for i, (j, k, mask) in enumerate(entries):
                    fraction = float(np.count_nonzero(mask) / mask.size)
                    rows.append(
                        {
                            "clip": clips[j].name,
                            "mask_set": set_name,
                            "mask_index": k,
                            "hole_fraction": round(fraction, 6),
                            "bucket": area_bucket(fraction),
                            "method": method.name,
                            "psnr": hole_psnr(outputs[i], truth[i], mask),
                            "ssim": clip_ssim(outputs[i], truth[i], mask),
                            "warp_error": warp_error(outputs[i], flows[j], mask),
                            "warp_error_gt": floors[i],
                        }
                    )
                progress.update(method.name, set_name, len(entries), time.perf_counter() - started)
    finally:
        pool.close()
    return rows


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------


def comparisons(rows: Sequence[dict], methods: Sequence[VideoMethod]) -> list[tuple[str, str]]:
    """Each method vs the best per-frame method (highest mean PSNR), and each clip model vs each per-frame model."""
    pairs: list[tuple[str, str]] = []
    per_frame = [m.name for m in methods if m.kind in ("per-frame baseline", "per-frame model")]
    if per_frame:
        means = {n: np.mean([r["psnr"] for r in rows if r["method"] == n]) for n in per_frame}
        best = max(per_frame, key=lambda n: means[n])
        pairs += [(m.name, best) for m in methods if m.name != best]
    for clip_model in (m.name for m in methods if m.kind == "clip model"):
        pairs += [(clip_model, m.name) for m in methods if m.kind == "per-frame model"]
    return list(dict.fromkeys(pairs))


def video_summary_markdown(
    rows: Sequence[dict], methods: Sequence[VideoMethod], header: str, notes: Sequence[str] = ()
) -> str:
    """Per metric a method x hole-area bucket table (mean ± 95% CI; warping error with the ground truth's floor),
    then paired differences between methods."""
    buckets = [b for b in AREA_LABELS if any(r["bucket"] == b for r in rows)]
    pooled = [*rows, *({**r, "bucket": "all"} for r in rows)]
    first = methods[0].name
    floor = [
        {**r, "method": GT_ROW, "warp_error": r["warp_error_gt"]} for r in pooled if r["method"] == first
    ]
    lines = [f"# Video evaluation: {', '.join(m.name for m in methods)}", "", header, ""]
    lines += [
        "- Cells: mean ± 95% confidence half-width (Student's t) over clip x mask pairs; buckets are the mask's hole "
        "fraction averaged over the frames, [lo, hi).",
        "- PSNR: of the mean squared error over every hole pixel of every frame (RGB in [0, 1]). SSIM: the image "
        "evaluator's (11x11 Gaussian, sigma 1.5, 5-px border dropped) on each composited frame, mean over frames.",
        "- Warping error (Lai et al. 2018, E_warp): output frame t+1 warped back to frame t by the ground truth's "
        "DIS flow, squared RGB distance summed over channels, mean over non-occluded pixels (forward-backward check) "
        "that lie in a hole of either frame, mean over frame pairs; lower = less flicker. "
        f"'{GT_ROW}': the same for the ground truth.",
        *[f"- {note}" for note in notes],
    ]
    for metric in METRICS:
        lines += ["", f"## {TITLES_VIDEO[metric]}", ""]
        digits = 6 if metric == "warp_error" else None
        lines += _table(
            [*pooled, *floor] if metric == "warp_error" else pooled,
            "bucket",
            [*buckets, "all"],
            metric,
            digits,
            pooled=metric
            == "psnr",  # beside each mean: the PSNR of the pooled MSE (a near-exact pair weighs little)
        )
    pairs = comparisons(rows, methods)
    if pairs:
        lines += ["", "## Paired differences (same clips and masks)", ""]
        lines += [
            "Mean of first − second over the clip x mask pairs both were scored on, ± 95% half-width (Student's t "
            "on the paired differences; the headline), and the median of the same differences. Positive Δ "
            "PSNR/SSIM and negative Δ warping error favour the first.",
            "",
        ]
        lines += paired_table(rows, pairs, METRICS, ITEM_KEYS, {"warp_error": 6}, median=True)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------------------------


def is_video_data(data: DictConfig | None) -> bool:
    """True when ``data`` configures a :class:`VideoDataModule` (or a subclass)."""
    target = (data or {}).get("_target_") if isinstance(data, DictConfig | dict) else None
    try:
        return bool(target) and issubclass(get_class(str(target)), VideoDataModule)
    except (ImportError, ValueError):
        return False


def check_video_options(cfg: DictConfig) -> None:
    """Refuse, on one line, the image-only options of conf/evaluate.yaml that mean nothing for video."""
    for option in IMAGE_ONLY:
        if cfg.get(option):
            raise ConfigError(f"{option} is for images only; with data=video leave it unset")
    for option in ("fid", "lpips"):
        if cfg.get(option) is True:
            raise ConfigError(
                f"{option}=true: FID and LPIPS are image metrics, not computed on video; use auto or false"
            )
    image_sets = OmegaConf.load(conf_dir() / "evaluate.yaml").get("mask_sets")
    if cfg.get("mask_sets") is not None and list(cfg.mask_sets) != list(image_sets):
        raise ConfigError(
            "mask_sets names image mask sets; with data=video choose clip masks with video_mask_sets=[area_00-10,...]"
        )


def run_video(cfg: DictConfig, workers: int = 1) -> dict[str, Path]:
    """Evaluate the methods on the split's clips (video baselines in ``workers`` processes); write results.csv and
    summary.md into ``paths.output_dir``."""
    check_video_options(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    inference = OmegaConf.to_container(cfg.get("inference") or {})
    methods = build_video_methods(list(cfg.methods), cfg.device, inference, int(cfg.batch_size))
    split = str(cfg.split)
    datamodule, videos, photos = split_sources(cfg.data, split)
    clips = load_clips(datamodule, videos, photos, int(cfg.image_size), cfg.get("max_images"))
    sets = list(cfg.get("video_mask_sets") or [])
    attach_video_mask_sets(clips, sets, cfg.masks_per_image, int(cfg.mask_seed))
    frames, height, width = clips[0].frames.shape[:3]
    from_photos = sum("#motion" in c.name for c in clips)
    header = (
        f"Split **{split}**: {len(clips)} clips of {frames} frames at {width}x{height} (frame_stride "
        f"{datamodule.frame_stride}; {len(clips) - from_photos} from {len(videos)} videos, {from_photos} from "
        f"{len(photos)} photos with synthetic motion); mask sets {', '.join(sets)}, {cfg.masks_per_image} per clip, "
        f"mask_seed {cfg.mask_seed}."
    )
    log.info("evaluating %d methods on %d clips x %d mask sets", len(methods), len(clips), len(sets))
    rows = evaluate_clips(clips, methods, workers)
    notes = [f"{m.name}: {m.note}" for m in methods if m.note]
    files = {"results": out / "results.csv", "summary": out / "summary.md"}
    write_csv(rows, files["results"])
    files["summary"].write_text(video_summary_markdown(rows, methods, header, notes))
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return files


__all__ = [
    "ClipModel",
    "EvalClip",
    "FrameModel",
    "VideoMethod",
    "build_video_methods",
    "evaluate_clips",
    "is_video_data",
    "run_video",
]
