"""Video data: lazy reading of videos and frame folders, clip datasets and datamodule (the B x T batch contract),
video mask generators and the video evaluation mask sets. Tiny synthetic videos written with cv2.VideoWriter."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import compose_config, write_tiny_images
from hydra.utils import instantiate

from inpainting.data import video as V
from inpainting.data.images import read_image_rgb
from inpainting.data.sample import sample_sources
from inpainting.data.video_datamodule import VideoDataModule
from inpainting.data.video_datasets import VideoClipDataset, camera_path, synthetic_clip
from inpainting.data.video_masks import MovingMask, StaticMask
from inpainting.errors import ConfigError, UserError
from inpainting.evaluation.mask_sets import AREA_BUCKETS
from inpainting.evaluation.video_mask_sets import VIDEO_MASK_SETS, video_mask_set

FRAMES, WIDTH, HEIGHT = 20, 64, 48
LEVEL = (
    12  # frame i is a flat grey of i * LEVEL (plus a moving dot): a frame's index can be read back from it
)


def frame(i: int) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), i * LEVEL, np.uint8)
    cv2.circle(image, (4 + 2 * i, 10), 3, (0, 0, 255), -1)
    return image


def write_video(path: Path, frames: int = FRAMES, fourcc: str = "mp4v") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (WIDTH, HEIGHT))
    assert writer.isOpened(), path
    for i in range(frames):
        writer.write(frame(i))
    writer.release()
    return path


def write_frame_folder(folder: Path, frames: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):  # unpadded numbers: natural sort must put f2 before f10
        cv2.imwrite(str(folder / f"f{i}.png"), frame(i))
    return folder


def levels(clip: np.ndarray) -> list[int]:
    """The frame index each decoded RGB frame shows (its grey level away from the dot)."""
    return [round(float(f[30:, 20:].mean()) / LEVEL) for f in clip]


def video_mask(name: str):
    """A conf/mask/video_*.yaml generator, composed through Hydra as `mask=<name>` would."""
    cfg = compose_config(Path("/tmp"), ["data=video_sample", f"mask={name}"])
    return instantiate(cfg.mask)


@pytest.fixture
def video_root(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    write_video(root / "a.mp4")
    write_video(root / "sub" / "b.avi", fourcc="MJPG")
    write_video(root / "c.mp4", frames=14)
    write_frame_folder(root / "shots" / "d")
    write_video(root / "e.avi", frames=16, fourcc="MJPG")
    return root


def datamodule(root: Path | None, **options) -> VideoDataModule:
    options = {
        "clip_length": 3,
        "image_size": 32,
        "batch_size": 2,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "clips_per_video": 2,
        "mask_generator": MovingMask(_box),
        **options,
    }
    return VideoDataModule(root=None if root is None else str(root), **options)


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return (np.indices((height, width)).sum(0) % 7 == 0).astype(np.uint8)


def _box(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    y, x = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    mask[y : y + height // 4, x : x + width // 4] = 1
    return mask


# ------------------------------------------------------------------------------------------------------------
# reading


def test_list_videos_finds_files_and_frame_folders_in_natural_order(video_root):
    (video_root / ".hidden.mp4").write_bytes(b"x")
    (video_root / "notes.txt").write_text("x")
    found = [p.relative_to(video_root).as_posix() for p in V.list_videos(video_root)]
    assert found == ["a.mp4", "c.mp4", "e.avi", "shots/d", "sub/b.avi"]
    assert [p.name for p in V.frame_files(video_root / "shots" / "d")][:4] == [
        "f0.png",
        "f1.png",
        "f2.png",
        "f3.png",
    ]
    (video_root.parent / "empty").mkdir()
    with pytest.raises(V.NoVideosFoundError, match="frame folders"):
        V.list_videos(video_root.parent / "empty")


@pytest.mark.parametrize("name, fourcc", [("a.mp4", "mp4v"), ("b.avi", "MJPG"), ("d", None)])
def test_read_clip_seeks_to_the_right_frames(tmp_path, name, fourcc):
    path = (
        write_video(tmp_path / name, fourcc=fourcc) if fourcc else write_frame_folder(tmp_path / name, FRAMES)
    )
    info = V.probe_video(path)
    assert (info.frames, info.width, info.height) == (FRAMES, WIDTH, HEIGHT)
    clip = V.read_clip(info, start=7, length=4, stride=3)
    assert clip.shape == (4, HEIGHT, WIDTH, 3) and clip.dtype == np.uint8
    assert levels(clip) == [7, 10, 13, 16]
    assert clip[0, 10, 4 + 14, 0] > 200  # RGB: the dot drawn in BGR red reads back as red


def test_streaming_frames_report_fps_and_size(tmp_path):
    with V.open_video(write_video(tmp_path / "a.mp4")) as stream:
        assert (stream.fps, stream.width, stream.height) == (10.0, WIDTH, HEIGHT)
        assert levels(list(stream)) == list(range(FRAMES))
    stream = V.open_video(write_frame_folder(tmp_path / "d"))
    assert stream.fps is None and levels(list(stream)) == list(range(12))
    with pytest.raises(V.VideoReadError, match="bad.mp4"):
        V.open_video(tmp_path / "bad.mp4")


def test_truncated_file_yields_only_its_good_frames(tmp_path, caplog):
    path = write_video(tmp_path / "cut.avi", fourcc="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still says 20 frames
    assert int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    with caplog.at_level(logging.WARNING, logger="inpainting.data"):
        info = V.probe_video(path)
    assert 2 <= info.frames < FRAMES and "decoding stops" in caplog.text
    clip = V.read_clip(info, 0, info.frames)
    for i, decoded in enumerate(clip):  # whole frames, not half-decoded ones
        assert np.abs(decoded.astype(int) - frame(i)[:, :, ::-1]).mean() < 3, i
    with pytest.raises(V.VideoReadError) as err:  # what the header promises is not there
        V.read_clip(info, 0, FRAMES)
    assert info.frames <= err.value.good_frames <= info.frames + 1
    # every clip the dataset indexes lies within the good frames, and each decodes
    dataset = VideoClipDataset([path], MovingMask(_box), clip_length=2, image_size=16)
    assert len(dataset) == info.frames - 1
    assert all(dataset[i]["image"].shape == (2, 3, 16, 16) for i in range(len(dataset)))


def test_a_source_that_breaks_after_indexing_is_truncated_once(tmp_path, caplog):
    folder = write_frame_folder(tmp_path / "d", frames=10)
    dataset = VideoClipDataset(
        [folder], MovingMask(_box), clip_length=3, image_size=16, mask_seed=0, clips_per_video=8
    )
    (folder / "f6.png").write_bytes(b"broken")  # frames 0-5 stay good
    with caplog.at_level(logging.WARNING, logger="inpainting.data"):
        starts = [dataset.locate(dataset[i]["index"])[1] for i in range(len(dataset))]
    assert max(starts) + 3 <= 6 and dataset.good_frames == {0: 6}
    assert sum(str(folder) in r.getMessage() for r in caplog.records) == 1


def test_corrupt_file_is_reported_once_and_skipped(video_root, caplog):
    (video_root / "bad.mp4").write_bytes(b"this is not a video" * 50)
    write_video(video_root / "cut.mp4")
    data = (video_root / "cut.mp4").read_bytes()
    (video_root / "cut.mp4").write_bytes(
        data[: len(data) // 2]
    )  # an mp4 cut short loses its index: unreadable
    dm = datamodule(video_root, val_fraction=0.0, test_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="inpainting.data"):
        dm.setup("fit")
        for batch in dm.train_dataloader():
            assert batch["image"].shape[1:] == (3, 3, 32, 32)
    for name in ("bad.mp4", "cut.mp4"):
        assert caplog.text.count(name) == 1, caplog.text
        assert all(name not in str(info.path) for info in dm.train_dataset.videos)
    assert len(dm.train_dataset.videos) == 5


# ------------------------------------------------------------------------------------------------------------
# datasets and datamodule


def test_batches_follow_the_video_contract(video_root):
    dm = datamodule(video_root, batch_size=3)
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        batch = next(iter(loader))
        image, mask = batch["image"], batch["mask"]
        assert image.dtype == torch.float32 and mask.dtype == torch.float32
        assert image.shape[1:] == (3, 3, 32, 32) and mask.shape[1:] == (3, 1, 32, 32)
        assert image.shape[0] == mask.shape[0] == len(batch["path"]) == len(batch["index"])
        assert image.min() >= -1.0 and image.max() <= 1.0 and image.std() > 0
        assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.any()


def test_train_crop_is_shared_by_all_frames(tmp_path):
    folder = tmp_path / "still"
    folder.mkdir()
    photo = read_image_rgb(write_tiny_images(tmp_path / "p", count=1, size=(60, 90))[0])
    for i in range(6):  # the same picture on every frame: one shared crop gives identical frames
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    dataset = VideoClipDataset([folder], MovingMask(_box), clip_length=4, image_size=24)
    for i in range(len(dataset)):
        image = dataset[i]["image"]
        assert all(torch.equal(image[0], image[t]) for t in range(4))


def test_the_dataset_reads_lazily(video_root, monkeypatch):
    dm = datamodule(video_root, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    dataset = dm.train_dataset
    assert len(pickle.dumps(dataset)) < 20_000  # 5 videos of 12-20 frames would be 250 kB of pixels
    opened = []
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: opened.append(a[0]) or real(*a))
    index = next(i for i in range(len(dataset)) if dataset.locate(i)[0] == 0)
    dataset[index]
    assert opened == [str(dataset.videos[0].path)]


def test_split_is_by_video(tmp_path):
    root = tmp_path / "many"
    for k in range(10):
        write_frame_folder(root / f"v{k}", frames=6)
    dm = datamodule(root, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    paths = {
        split: {s[i]["path"] for i in range(len(s))}
        for split, s in (("train", dm.train_dataset), ("val", dm.val_dataset), ("test", dm.test_dataset))
    }
    assert [len(p) for p in paths.values()] == [6, 2, 2]
    assert not (
        paths["train"] & paths["val"] or paths["train"] & paths["test"] or paths["val"] & paths["test"]
    )
    assert len(dm.train_dataset) == 6 * 4  # every start of its videos; val/test: clips_per_video each
    assert len(dm.val_dataset) == 2 * 2


def test_eval_clips_and_masks_identical_across_constructions_and_workers(video_root, tmp_path):
    photos = tmp_path / "photos"
    write_tiny_images(photos, count=5, size=(70, 90))
    batches = []
    for workers in (0, 2):
        dm = datamodule(video_root, synthetic_motion=True, photo_root=str(photos), num_workers=workers)
        dm.setup("validate")
        batches.append(list(dm.val_dataloader()))
    assert len(batches[0]) == len(batches[1]) > 0
    assert any(".png" in p for b in batches[0] for p in b["path"]), "photos made val clips"
    for first, second in zip(*batches, strict=True):
        assert torch.equal(first["image"], second["image"]) and torch.equal(first["mask"], second["mask"])
        assert first["path"] == second["path"]


def test_video_sample_config_trains_without_videos(tmp_path):
    cfg = compose_config(tmp_path, ["data=video_sample", "mask=video_mixed", "data.image_size=24"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 5, 3, 24, 24) and batch["mask"].shape == (2, 5, 1, 24, 24)
    assert len(dm.splits["train"]["photos"]) == 7 and len(dm.splits["val"]["photos"]) == 3


@pytest.mark.parametrize(
    "options, match",
    [
        ({"clip_length": 0}, "clip_length"),
        ({"frame_stride": 1.5}, "frame_stride"),
        ({"clips_per_video": -1}, "clips_per_video"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction"),
        ({"synthetic_motion": True}, "photo_root"),
        ({"sample": True}, "synthetic_motion"),
    ],
)
def test_invalid_options_name_themselves(video_root, options, match):
    with pytest.raises(ConfigError, match=match):
        datamodule(video_root, **options)


def test_an_image_mask_generator_or_missing_root_is_a_one_line_user_error(tmp_path, video_root):
    image_generator = instantiate(compose_config(tmp_path, []).mask)  # the default mask=mixed
    with pytest.raises(ConfigError, match="mask_generator.*mask=video_mixed"):
        datamodule(video_root, mask_generator=image_generator).setup("fit")
    with pytest.raises(ConfigError, match="root"):
        datamodule(None)
    with pytest.raises(UserError, match="root.*does not exist"):
        datamodule(tmp_path / "nowhere").setup("fit")


# ------------------------------------------------------------------------------------------------------------
# synthetic motion


def test_synthetic_motion_moves_smoothly_without_borders():
    photo = read_image_rgb(sample_sources()[0][0])
    height, width = 200, 300
    for seed in range(20):
        matrices = camera_path(np.random.default_rng(seed), 8, 64, width, height)
        corners = np.array([[-0.5, -0.5, 1], [63.5, -0.5, 1], [-0.5, 63.5, 1], [63.5, 63.5, 1]]).T
        mapped = matrices @ corners  # the window of every frame, in photo pixel coordinates
        assert mapped[:, 0].min() >= -0.5 - 1e-6 and mapped[:, 0].max() <= width - 0.5 + 1e-6
        assert mapped[:, 1].min() >= -0.5 - 1e-6 and mapped[:, 1].max() <= height - 0.5 + 1e-6
        steps = np.diff(matrices[:, :, 2], axis=0)
        assert np.abs(np.diff(steps, axis=0)).max() < 0.5 * np.abs(steps).max() + 1.0  # no jumps
    clip = synthetic_clip(np.random.default_rng(3), photo, 5, 64).astype(np.float32)
    neighbours = [np.abs(clip[t + 1] - clip[t]).mean() for t in range(4)]
    assert min(neighbours) > 0.5  # it moves every frame
    assert max(neighbours) < np.abs(clip[-1] - clip[0]).mean() + 1  # by small steps, not jumps
    again = synthetic_clip(np.random.default_rng(3), photo, 5, 64).astype(np.float32)
    assert np.array_equal(clip, again)


# ------------------------------------------------------------------------------------------------------------
# masks


def check_clip_mask(mask: np.ndarray, frames: int, height: int, width: int) -> None:
    assert mask.shape == (frames, height, width) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1}


@pytest.mark.parametrize("name", ["video_object", "video_static", "video_mixed"])
def test_video_mask_configs_follow_the_contract_and_repeat(name):
    gen = video_mask(name)
    for index in range(4):
        mask = gen(np.random.default_rng((0, index)), 6, 48, 64)
        check_clip_mask(mask, 6, 48, 64)
        assert mask.any() and not mask.all()
        assert np.array_equal(mask, gen(np.random.default_rng((0, index)), 6, 48, 64))


def test_object_masks_move_and_static_masks_do_not():
    moving, static = video_mask("video_object"), video_mask("video_static")
    assert isinstance(moving, MovingMask) and isinstance(static, StaticMask)
    shifts = []
    for index in range(10):
        mask = moving(np.random.default_rng((1, index)), 6, 128, 128)
        assert all(not np.array_equal(mask[t], mask[t + 1]) for t in range(5))
        ys, xs = np.nonzero(mask[0])
        ye, xe = np.nonzero(mask[-1])
        shifts.append(np.hypot(xe.mean() - xs.mean(), ye.mean() - ys.mean()))
        hold = static(np.random.default_rng((1, index)), 6, 128, 128)
        assert all(np.array_equal(hold[0], hold[t]) for t in range(6)) and hold.any()
    assert np.median(shifts) > 5  # pixels over 5 frames at 128: 2-6% of the side per frame


def test_bounce_keeps_the_shape_inside_and_wrap_keeps_moving():
    box = MovingMask(_box, max_rotation=0, max_scale_change=0, min_speed=0.1, max_speed=0.1)
    for index in range(5):
        mask = box(np.random.default_rng(index), 30, 64, 64)
        assert len({int(m.sum()) for m in mask}) == 1  # bounced off the edges, never cut by them
    full = MovingMask(_stripes, boundary="wrap")  # holes all over the frame: no room to bounce
    mask = full(np.random.default_rng(0), 4, 40, 40)
    assert not np.array_equal(mask[0], mask[-1])


def test_video_mask_set_areas_fall_in_their_buckets_and_repeat():
    for name, (lo, hi) in zip(VIDEO_MASK_SETS, AREA_BUCKETS, strict=True):
        masks = video_mask_set(name, 2, 4, 48, 48, seed=5)
        for mask in masks:
            check_clip_mask(mask, 4, 48, 48)
            assert lo <= mask.mean() < hi and mask.any()
            assert not np.array_equal(mask[0], mask[-1])
        assert all(
            np.array_equal(a, b)
            for a, b in zip(masks, video_mask_set(name, 2, 4, 48, 48, seed=5), strict=True)
        )
    with pytest.raises(ConfigError, match="area_00-10"):
        video_mask_set("thin", 1, 4, 48, 48)


def test_workers_are_capped_at_the_cores_as_for_images(video_root):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert datamodule(video_root, num_workers=100000).num_workers <= cores
