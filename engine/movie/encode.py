"""Encode frames into MP4 (H.264, via imageio-ffmpeg's bundled ffmpeg) or GIF (Pillow).

Both encoders are maintained libraries: imageio-ffmpeg's wheel ships an ffmpeg binary, so
nothing else has to be installed, and GIFs go through imageio's Pillow plugin. Files are
written atomically (engine.data.atomic): an interrupted or failed encoding leaves no
half-written movie. The temporary file's name does not end in .mp4, so the container is
named explicitly (`-f mp4`) instead of being guessed from the suffix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine.data.atomic import atomic_path
from engine.errors import LatentsimError, UnknownNameError

FORMATS = ("mp4", "gif")
MEDIA_TYPES = {"mp4": "video/mp4", "gif": "image/gif"}


class EncoderUnavailableError(LatentsimError, RuntimeError):
    """The library that encodes a format cannot be used here."""

    def __init__(self, movie_format: str, reason: str):
        self.format, self.reason = movie_format, reason
        others = [f for f in FORMATS if f != movie_format]
        super().__init__(
            f"cannot write {movie_format} movies: {reason}; install the project's "
            f"dependencies (pip install imageio imageio-ffmpeg), or choose another format "
            f"({', '.join(others)})"
        )


def movie_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The format named by `fmt`, else by the file's suffix; one of FORMATS."""
    name = fmt if fmt is not None else Path(path).suffix.lstrip(".").lower()
    if name not in FORMATS:
        raise UnknownNameError("movie format", name or f"(no suffix in {path})", FORMATS)
    return name


def check_encoder(fmt: str) -> None:
    """Fail now, before any rendering, if `fmt` cannot be encoded here."""
    try:
        import imageio.v3  # noqa: F401

        if fmt == "mp4":
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        raise EncoderUnavailableError(fmt, f"{type(err).__name__}: {err}") from err


@contextmanager
def movie_writer(
    path: str | os.PathLike[str], fmt: str, fps: float, size: tuple[int, int]
) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield `append(frame)` for (H, W, 3) uint8 frames of `size` (W, H); the movie
    replaces `path` only if the block completes."""
    check_encoder(fmt)
    with atomic_path(path) as temporary:
        if fmt == "mp4":
            with _mp4(temporary, fps, size) as append:
                yield append
        else:
            with _gif(temporary, fps) as append:
                yield append


@contextmanager
def _mp4(path: Path, fps: float, size: tuple[int, int]) -> Iterator[Callable]:
    import imageio_ffmpeg

    encoder = imageio_ffmpeg.write_frames(
        str(path),
        size,
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=16,
        ffmpeg_log_level="error",
        output_params=["-f", "mp4", "-movflags", "+faststart"],
    )
    encoder.send(None)  # start ffmpeg
    try:
        yield lambda frame: encoder.send(np.ascontiguousarray(frame, dtype=np.uint8))
    finally:
        encoder.close()  # waits for ffmpeg to finish the file


@contextmanager
def _gif(path: Path, fps: float) -> Iterator[Callable]:
    import imageio.v3 as iio

    duration_ms = 1000.0 / fps
    with iio.imopen(path, "w", plugin="pillow", extension=".gif") as file:
        yield lambda frame: file.write(
            np.ascontiguousarray(frame, dtype=np.uint8), duration=duration_ms, loop=0
        )
