"""The demo's web page (``python -m inpainting.demo``): upload a photo, brush over what to remove, and run.

Built on gradio's ``ImageEditor``: the uploaded photo is its background, every brushed layer is the mask (any
painted pixel = missing, whatever the brush colour). The logic is in plain functions (:func:`editor_to_arrays`,
:func:`check_image`, :class:`DemoRunner`), tested without a browser; the page itself is tested in headless
Chromium (tests/test_demo_browser.py). gradio is an optional extra (``pip install inpainting[demo]``): only this
module imports it, and nothing else in the package imports this module.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from gradio.data_classes import FileData  # noqa: E402
from gradio.processing_utils import save_pil_to_cache  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

from inpainting.data.images import ImageReadError, check_mask_size, read_image_rgb, read_mask  # noqa: E402
from inpainting.errors import InputError  # noqa: E402
from inpainting.inference.inpainter import Inpainter, LoadedModel, load_model  # noqa: E402

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_PIXELS = 16_000_000
#: Every event that decodes or inpaints runs in this one gradio concurrency group, one job at a time, so the
#: memory of the whole server is that of one job at most, however many clients call at once.
CONCURRENCY_ID = "inpaint"
#: gradio's ``delete_cache``: every 10 minutes, uploads and results older than an hour are deleted (and all of
#: them when the server stops), so the disk does not fill up with one copy of every call.
DELETE_CACHE = (600, 3600)
INSTRUCTIONS = (
    "1. Upload a photo (drop it on the editor, click it, or 'Open a file'). 2. Pick the brush and paint over what should go: "
    "every painted pixel is filled, whatever the colour. 3. Press **Inpaint**. The result keeps every unpainted "
    "pixel exactly; download it with the button on the result."
)


def _to_rgb(array: np.ndarray) -> np.ndarray:
    """Any editor array (grey, RGB, RGBA; uint8 or not) -> uint8 RGB, transparency composited over white."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise gr.Error(
            f"this is not a picture: expected an RGB or RGBA image, got an array of shape {array.shape}"
        )
    if array.shape[2] == 3:
        return np.ascontiguousarray(array)
    alpha = array[:, :, 3:4].astype(np.uint16)
    rgb = (array[:, :, :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
    return rgb.astype(np.uint8)


def _painted(layer: np.ndarray) -> np.ndarray:
    """Where a brush layer has paint: alpha > 0 (RGBA), else any non-zero value."""
    layer = np.asarray(layer)
    if layer.ndim == 3 and layer.shape[2] == 4:
        return layer[:, :, 3] > 0
    return layer.reshape(*layer.shape[:2], -1).any(axis=2) if layer.ndim == 3 else layer > 0


def editor_to_arrays(value: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """An ImageEditor value (numpy type) -> ``(uint8 H x W x 3 photo, uint8 H x W mask, 1 = painted)``."""
    background = None if value is None else value.get("background")
    if background is None:
        raise gr.Error(
            "Upload a photo first (drop it on the editor). If you dropped a file and nothing appeared, the browser "
            "could not open it as a picture: try 'Open a file' for a message saying why."
        )
    image = _to_rgb(background)
    mask = np.zeros(image.shape[:2], bool)
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        painted = _painted(layer)
        if painted.shape != mask.shape:
            raise gr.Error(
                f"a brush layer is {painted.shape[1]}x{painted.shape[0]} but the photo is "
                f"{mask.shape[1]}x{mask.shape[0]}: clear the editor and upload the photo again"
            )
        mask |= painted
    return image, mask.astype(np.uint8)


def refuse(message: str) -> gr.Error:
    """A client's mistake: the message goes to the client, the console gets one line (no traceback)."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def _over_limit(what: str, width: int, height: int, max_pixels: int) -> gr.Error:
    return refuse(
        f"{what} is {width}x{height} = {height * width:,} pixels, more than this demo's limit of "
        f"{max_pixels:,}: downscale it first (or start the demo with max_pixels=...)."
    )


def check_image(image: np.ndarray, max_pixels: int) -> None:
    """Refuse pictures over ``max_pixels`` (width x height) with a message saying the limit."""
    height, width = image.shape[:2]
    if max_pixels and height * width > max_pixels:
        raise _over_limit("The photo", width, height, max_pixels)


def check_file(source: str | os.PathLike | bytes, max_pixels: int, what: str) -> None:
    """Refuse an image file over ``max_pixels`` from its header alone, before anything decodes it.

    Pillow's ``Image.open`` reads the header and no pixel data, so a 12000 x 12000 upload costs nothing here
    where decoding it would cost gigabytes. Files Pillow cannot identify pass: the reader that follows says why.
    """
    if not max_pixels:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:
        raise refuse(
            f"{what} is too large to open ({error}); this demo accepts up to {max_pixels:,} pixels: "
            "downscale it first."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        return
    if width * height > max_pixels:
        raise _over_limit(what, width, height, max_pixels)


def served(function: F) -> F:
    """Wrap an event handler so that the client always gets a message and the console no duplicate traceback.

    A :class:`gradio.Error` is the client's to fix: it goes back as it is, with one log line. Anything else is
    ours: its traceback is logged once, and the client gets its type and a sentence, never an empty message
    (``MemoryError()`` has none of its own).
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except gr.Error as error:
            if error.print_exception:
                log.warning("refused: %s", error.message)
                error.print_exception = False
            raise
        except Exception as error:
            log.exception("%s failed", function.__name__)
            detail = str(error).strip() or "no details"
            raise gr.Error(
                f"{type(error).__name__}: {detail}. The demo could not process this request; its console "
                "has the details.",
                print_exception=False,
            ) from error

    return wrapper  # type: ignore[return-value]


def check_editor_uploads(editor: gr.ImageEditor, max_pixels: int) -> gr.ImageEditor:
    """Make ``editor`` refuse oversized pictures (background and every layer) from their header.

    The stock component decodes every uploaded layer before any event handler runs, so a handler's own size
    check comes after the memory is spent; this wraps the one method that decodes. (A subclass would do the
    same, but gradio writes a ``.pyi`` file next to the module of every Component subclass.)
    """
    convert = editor.convert_and_format_image

    def checked(
        file: FileData | None | bytes, flatten_on_white: bool = False
    ) -> np.ndarray | Image.Image | str | None:
        if file is None:
            return None
        source = file.path if isinstance(file, FileData) else bytes(file)
        check_file(source, max_pixels, "The photo" if flatten_on_white else "A brush layer")
        try:
            return convert(file, flatten_on_white)
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise refuse(f"The uploaded picture cannot be read: {type(error).__name__}: {error}") from error

    editor.convert_and_format_image = checked  # type: ignore[method-assign]
    return editor


class DemoRunner:
    """What the page's buttons call: validation and inpainting on NumPy arrays."""

    def __init__(self, inpainter: Inpainter, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.inpainter = inpainter
        self.max_pixels = max_pixels

    def check_upload(self, value: dict[str, Any] | None) -> None:
        """On upload: refuse oversized photos at once, before anyone brushes."""
        if value is not None and value.get("background") is not None:
            check_image(np.asarray(value["background"]), self.max_pixels)

    def load_file(self, path: str | None) -> dict[str, Any]:
        """'Open a file': read any file server-side (clear error for non-images) into the editor's background."""
        if not path:
            raise refuse("No file received.")
        check_file(path, self.max_pixels, Path(path).name)
        try:
            image = read_image_rgb(path)
        except ImageReadError as error:
            raise refuse(f"{Path(path).name} is not a picture this demo can read: {error.reason}") from error
        check_image(image, self.max_pixels)
        return {"background": image, "layers": [], "composite": image}

    def inpaint_files(self, image: str | None, mask: str | None) -> str:
        """The HTTP API (``api_name="inpaint"``): an image file and a mask file (white = missing, same size) in,
        the path of the filled PNG out. Same limits as the page: ``max_upload_mb`` per file, ``max_pixels`` (of
        the image and of the mask, read from their headers before either is decoded).

        The PNG is written where gradio keeps its uploads and results (its cache, emptied by
        ``delete_cache``), so the demo leaves no folder of its own behind."""
        if not image or not mask:
            raise refuse("The API takes two files: the image and its mask (white = missing).")
        check_file(image, self.max_pixels, f"The image {Path(image).name}")
        check_file(mask, self.max_pixels, f"The mask {Path(mask).name}")
        try:
            photo = read_image_rgb(image)
            check_image(photo, self.max_pixels)
            hole = read_mask(mask)
        except ImageReadError as error:
            raise refuse(f"{error.path.name} is not a picture this demo can read: {error.reason}") from error
        try:
            check_mask_size(photo, hole)
        except InputError as error:
            raise refuse(str(error)) from error
        result = self.inpainter(photo, hole) if hole.any() else photo
        name = f"{Path(image).stem}_filled"
        return save_pil_to_cache(Image.fromarray(result), get_upload_folder(), name=name, format="png")

    def run(self, value: dict[str, Any] | None) -> tuple[np.ndarray, str]:
        """Editor value -> (result image, status line)."""
        image, mask = editor_to_arrays(value)
        check_image(image, self.max_pixels)
        holes = int(mask.sum())
        if holes == 0:
            gr.Warning("Nothing is painted: brush over the part of the photo to fill, then press Inpaint.")
            return image, "Nothing painted: the photo is returned unchanged."
        start = time.perf_counter()
        result = self.inpainter(image, mask)
        seconds = time.perf_counter() - start
        height, width = mask.shape
        return result, (
            f"Filled {holes} pixels ({100 * holes / mask.size:.1f}% of {width}x{height}) in {seconds:.2f} s."
        )


def build_app(runner: DemoRunner, model: LoadedModel | None = None) -> gr.Blocks:
    """The page: editor and button on the left, result (PNG, downloadable) and status on the right.

    Every event shares one concurrency group of one job (:data:`CONCURRENCY_ID`) and goes through
    :func:`served`.
    """
    described = model.describe() if model is not None else "a model"
    one_at_a_time = {"concurrency_id": CONCURRENCY_ID, "concurrency_limit": 1}
    with gr.Blocks(title="Inpainting demo", analytics_enabled=False, delete_cache=DELETE_CACHE) as app:
        gr.Markdown(f"## Inpainting\n{INSTRUCTIONS}\n\nModel: `{described}`")
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(
                    label="Photo and mask",
                    type="numpy",
                    image_mode="RGBA",
                    sources=("upload", "clipboard"),
                    brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed", default_size=12),
                    layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
                    transforms=(),
                    format="png",
                    elem_id="editor",
                )
                check_editor_uploads(editor, runner.max_pixels)
                with gr.Row():
                    opener = gr.UploadButton("Open a file", type="filepath", elem_id="open", size="sm")
                    button = gr.Button("Inpaint", variant="primary", elem_id="run")
            with gr.Column():
                result = gr.Image(
                    label="Result",
                    type="numpy",
                    format="png",
                    interactive=False,
                    buttons=["download"],
                    elem_id="result",
                )
                status = gr.Markdown(elem_id="status")
        # the HTTP API (see README "Demo"): files in, PNG out, on an invisible row of the same page
        with gr.Row(visible=False):
            api_image = gr.File(type="filepath", label="image")
            api_mask = gr.File(type="filepath", label="mask")
            api_result = gr.File(label="result")
            api_button = gr.Button("api")
        api_button.click(
            served(runner.inpaint_files),
            inputs=[api_image, api_mask],
            outputs=api_result,
            api_name="inpaint",
            api_description="image file + mask file (white = missing, same size) -> filled PNG",
            **one_at_a_time,
        )
        hidden = {"api_visibility": "undocumented", **one_at_a_time}
        editor.upload(served(runner.check_upload), inputs=editor, outputs=None, **hidden)
        opener.upload(served(runner.load_file), inputs=opener, outputs=editor, **hidden)
        button.click(served(runner.run), inputs=editor, outputs=[result, status], **hidden)
    return app


def create(cfg: DictConfig) -> tuple[gr.Blocks, LoadedModel]:
    """Load the model the config names and build the page (not launched)."""
    model = load_model(cfg.get("ckpt_path"), cfg.get("device", "cpu"), trust_code=bool(cfg.get("trust_code")))
    inpainter = Inpainter(model, cfg.strategy, cfg.max_side, cfg.margin)
    return build_app(DemoRunner(inpainter, int(cfg.max_pixels)), model), model


def launch(app: gr.Blocks, cfg: DictConfig, block: bool = True) -> None:
    """Serve the page on ``cfg.host:cfg.port`` (127.0.0.1 by default); ``block=False`` returns at once.

    ``quiet``: gradio's own start-up lines would tell the user to "set `share=True` in `launch()`", code they
    never call; :func:`main` logs the address instead."""
    if str(cfg.host) not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this machine can use the demo", cfg.host)
    app.queue(default_concurrency_limit=1).launch(
        server_name=str(cfg.host),
        server_port=int(cfg.port),
        share=False,
        show_error=True,
        max_file_size=f"{int(cfg.max_upload_mb)}mb",
        ssr_mode=False,  # plain client-side page: no Node server
        prevent_thread_lock=not block,
        quiet=True,
    )
