"""Movies of rollouts for slides: chosen panels of one field over lead time, MP4 or GIF.

    from engine.movie import MovieConfig, write_movie
    write_movie(rollout, "rb.mp4", truth=truth, config=MovieConfig(panels=("truth", "mean")))

`rollout` is an engine rollout Dataset (member, time, x, y) or a NetCDF file the explorer
or `rollout(...).to_netcdf` wrote; `truth` (time, x, y) is matched on the rollout's
`frame` coordinate and is needed by the truth and error panels. Each frame shows the
field's colour scale (as in the explorer), a caption with the lead and lead time, and the
model's name and settings. `latentsim movie` and the explorer's Share tab call this.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import xarray
from tqdm.auto import tqdm

from engine.errors import DataFormatError, ParameterError
from engine.movie.encode import (
    FORMATS,
    MEDIA_TYPES,
    EncoderUnavailableError,
    check_encoder,
    movie_format,
    movie_writer,
)
from engine.movie.panels import (
    NEEDS_TRUTH,
    PANELS,
    MovieData,
    check_panels,
    ensemble_stats,
    mosaic,
    movie_data,
)
from engine.movie.render import MovieRenderer, frame_size, movie_title

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "PANELS",
    "EncoderUnavailableError",
    "MovieConfig",
    "MovieData",
    "MovieInfo",
    "check_encoder",
    "ensemble_stats",
    "frame_size",
    "mosaic",
    "movie_bytes",
    "movie_data",
    "write_movie",
]


@dataclass(frozen=True)
class MovieConfig:
    """What a movie shows and how. Values are checked on construction.

    panels: some of PANELS, in order; None shows all of them that the inputs allow
        (truth and error need the truth).
    field: a channel of the rollout; None picks the system's showcase field.
    fps: frames (leads) per second.
    width: frame width in pixels (the height follows from the layout); rounded up to a
        multiple of 16, as video encoders want.
    """

    panels: tuple[str, ...] | None = None
    field: str | None = None
    fps: float = 5.0
    width: int = 1280

    def __post_init__(self) -> None:
        if self.panels is not None:
            object.__setattr__(self, "panels", check_panels(self.panels))
        fps_ok = isinstance(self.fps, int | float) and not isinstance(self.fps, bool)
        if not fps_ok or not 0.5 <= self.fps <= 60:
            raise ParameterError("fps", self.fps, "a number in 0.5..60")
        if (
            isinstance(self.width, bool)
            or not isinstance(self.width, int)
            or not (160 <= self.width <= 3840)
        ):
            raise ParameterError("width", self.width, "an integer in 160..3840 (pixels)")

    def chosen_panels(self, with_truth: bool) -> tuple[str, ...]:
        if self.panels is None:
            return tuple(p for p in PANELS if with_truth or p not in NEEDS_TRUTH)
        missing = [p for p in self.panels if p in NEEDS_TRUTH and not with_truth]
        if missing:
            raise ParameterError(
                "panel",
                missing[0],
                f"one of {', '.join(p for p in PANELS if p not in NEEDS_TRUTH)} without the "
                "truth (give the truth, e.g. --truth FILE, or make the movie from a zoo model)",
            )
        return self.panels


@dataclass(frozen=True)
class MovieInfo:
    """What was written: where, in which format, how many frames of which size (W, H)."""

    path: Path
    format: str
    frames: int
    size: tuple[int, int]
    panels: tuple[str, ...]
    field: str


def write_movie(
    rollout: xarray.Dataset | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    truth: xarray.Dataset | str | os.PathLike[str] | None = None,
    config: MovieConfig | None = None,
    fmt: str | None = None,
    progress: bool = False,
) -> MovieInfo:
    """Render one frame per lead of `rollout` and encode them into `path` (atomically).

    `fmt` defaults to the suffix of `path` (mp4 or gif). Every input is checked (panel
    names, field, empty rollout, truth frames, encoder) before the first frame is drawn.
    """
    config = config if config is not None else MovieConfig()
    fmt = movie_format(path, fmt)
    check_encoder(fmt)
    data = movie_data(_open(rollout), None if truth is None else _open(truth), config.field)
    panels = config.chosen_panels(data.truth is not None)
    renderer = MovieRenderer(data, panels, config.width, movie_title(data.attrs))
    try:
        with movie_writer(path, fmt, config.fps, renderer.size) as append:
            for t in tqdm(
                range(data.frames),
                desc=f"movie {Path(path).name}",
                unit="frame",
                disable=not progress,
            ):
                append(renderer.frame(t))
    finally:
        renderer.close()
    return MovieInfo(Path(path), fmt, data.frames, renderer.size, panels, data.field)


def movie_bytes(
    rollout: xarray.Dataset,
    fmt: str,
    *,
    truth: xarray.Dataset | None = None,
    config: MovieConfig | None = None,
) -> bytes:
    """The movie as bytes (for downloads): written to a temporary file, then read."""
    fmt = movie_format(f"movie.{fmt}", fmt)
    with tempfile.TemporaryDirectory(prefix="latentsim-movie-") as scratch:
        target = Path(scratch) / f"movie.{fmt}"
        write_movie(rollout, target, truth=truth, config=config, fmt=fmt)
        return target.read_bytes()


def _open(source: xarray.Dataset | str | os.PathLike[str]) -> xarray.Dataset:
    if isinstance(source, xarray.Dataset):
        return source
    if not Path(source).is_file():
        raise ParameterError("rollout file", str(source), "an existing NetCDF file")
    try:
        with xarray.open_dataset(source, engine="h5netcdf") as dataset:
            return dataset.load()
    except (OSError, ValueError) as err:
        raise DataFormatError(source, f"not a NetCDF4 rollout file ({err})") from err
