"""Movies: decoded back, they have one frame per lead at the promised size; bad input is
refused before anything is written, and a failed encoding leaves no file."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import xarray

import engine.movie.render
from engine.cli import main
from engine.errors import ParameterError, UnknownNameError
from engine.movie import EncoderUnavailableError, MovieConfig, movie_bytes, write_movie
from engine.movie.panels import movie_data

LEADS, MEMBERS, GRID = 5, 3, (16, 8)


def datasets(leads: int = LEADS) -> tuple[xarray.Dataset, xarray.Dataset]:
    """A rollout (member, time, x, y) predicting truth frames 1..leads, and the truth."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(leads + 1, *GRID)).astype(np.float32)
    members = truth[None, 1:] + 0.1 * rng.normal(size=(MEMBERS, leads, *GRID))
    x = (np.arange(GRID[0]) + 0.5) / GRID[0] * 2.0
    y = (np.arange(GRID[1]) + 0.5) / GRID[1]
    lead = np.arange(1, leads + 1)
    attrs = {
        "emulator": "toy-diffusion-ae4",
        "emulator_kind": "diffusion",
        "sampler": "ab",
        "steps": 4,
        "members": MEMBERS,
        "seed": 7,
        "horizon": leads,
    }
    rollout = xarray.Dataset(
        {
            "tracer": (
                ("member", "time", "x", "y"),
                members.astype(np.float32),
                {"units": "kg m-3"},
            ),
            "speed": (("member", "time", "x", "y"), members.astype(np.float32)),
        },
        coords={
            "time": ("time", 0.5 * lead),
            "lead": ("time", lead),
            "frame": ("time", lead),
            "x": x,
            "y": y,
        },
        attrs=attrs,
    )
    truth_ds = xarray.Dataset(
        {"tracer": (("time", "x", "y"), truth), "speed": (("time", "x", "y"), truth)},
        coords={
            "time": 0.5 * np.arange(leads + 1),
            "frame": ("time", np.arange(leads + 1)),
            "x": x,
            "y": y,
        },
    )
    return rollout, truth_ds


def test_an_mp4_decodes_to_one_frame_per_lead_at_the_stated_size(tmp_path):
    rollout, truth = datasets()
    info = write_movie(
        rollout, tmp_path / "toy.mp4", truth=truth, config=MovieConfig(width=320, field="tracer")
    )
    assert info.panels == ("truth", "mean", "members", "std", "error")
    assert info.size[0] == 320 and info.size[1] % 16 == 0
    frames = iio.imread(tmp_path / "toy.mp4", index=None, plugin="FFMPEG")
    assert frames.shape == (LEADS, info.size[1], info.size[0], 3)
    assert frames[0].std() > 10  # drawn, not blank
    assert not np.array_equal(frames[0], frames[-1])  # the caption and images change


def test_a_gif_without_truth_shows_the_panels_that_need_none(tmp_path):
    rollout, _ = datasets()
    info = write_movie(rollout, tmp_path / "toy.gif", config=MovieConfig(width=240))
    assert info.panels == ("mean", "members", "std") and info.field == "tracer"
    frames = iio.imread(tmp_path / "toy.gif", index=None)
    assert frames.shape[:3] == (LEADS, info.size[1], info.size[0])
    assert movie_bytes(rollout, "gif", config=MovieConfig(width=240))[:6] == b"GIF89a"


def test_the_caption_names_field_lead_and_time_and_the_title_the_model():
    rollout, truth = datasets()
    data = movie_data(rollout, truth, "tracer")
    renderer = engine.movie.render.MovieRenderer(
        data, ("truth",), 320, engine.movie.render.movie_title(data.attrs)
    )
    assert renderer.caption_text(2) == (
        "tracer [kg m-3] · lead 3 of 5 · t = 1.5 after the last context frame · truth frame 3"
    )
    assert engine.movie.render.movie_title(data.attrs) == (
        "toy-diffusion-ae4 · ab 4 steps · 3 members · seed 7"
    )
    np.testing.assert_array_equal(data.truth, truth["tracer"].values[1:])


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        (
            dict(panels=("truth", "mean", "sparkle")),
            UnknownNameError,
            ("'sparkle'", "error, mean, members, std, truth"),
        ),
        (dict(panels=()), ParameterError, ("panels",)),
        (dict(field="pressure"), UnknownNameError, ("'pressure'", "speed, tracer")),
        (dict(fps=0), ParameterError, ("fps",)),
    ],
)
def test_bad_settings_are_refused_with_the_value_and_the_choices(tmp_path, config, error, words):
    rollout, truth = datasets()
    with pytest.raises(error) as raised:
        write_movie(rollout, tmp_path / "bad.mp4", truth=truth, config=MovieConfig(**config))
    assert all(word in str(raised.value) for word in words), str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_rollout_a_missing_truth_or_an_unknown_format_is_refused(tmp_path):
    rollout, truth = datasets()
    with pytest.raises(ParameterError, match="no frames"):
        write_movie(rollout.isel(time=slice(0, 0)), tmp_path / "empty.mp4", truth=truth)
    with pytest.raises(ParameterError, match="truth"):
        write_movie(rollout, tmp_path / "t.mp4", config=MovieConfig(panels=("error",)))
    with pytest.raises(UnknownNameError, match="'avi'; valid choices: gif, mp4"):
        write_movie(rollout, tmp_path / "movie.avi", truth=truth)
    with pytest.raises(ParameterError, match="truth frames"):
        write_movie(rollout, tmp_path / "t.mp4", truth=truth.isel(time=slice(0, 3)))
    assert list(tmp_path.iterdir()) == []


def test_an_unavailable_encoder_says_so_and_offers_the_other_format(tmp_path, monkeypatch):
    import imageio_ffmpeg

    def missing():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", missing)
    rollout, truth = datasets()
    with pytest.raises(EncoderUnavailableError, match=r"cannot write mp4 movies.*gif"):
        write_movie(rollout, tmp_path / "movie.mp4", truth=truth)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_a_failure_while_encoding_leaves_no_file(tmp_path, monkeypatch, suffix):
    rollout, truth = datasets()
    target = tmp_path / f"movie.{suffix}"
    target.write_bytes(b"the previous movie")
    draw = engine.movie.render.MovieRenderer.frame

    def failing(self, t):
        if t == 2:
            raise KeyboardInterrupt
        return draw(self, t)

    monkeypatch.setattr(engine.movie.render.MovieRenderer, "frame", failing)
    with pytest.raises(KeyboardInterrupt):
        write_movie(rollout, target, truth=truth, config=MovieConfig(width=160))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == b"the previous movie"


def test_the_command_makes_a_movie_from_rollout_and_truth_files(tmp_path, capsys):
    rollout, truth = datasets()
    rollout.to_netcdf(tmp_path / "rollout.nc", engine="h5netcdf")
    truth.to_netcdf(tmp_path / "truth.nc", engine="h5netcdf")
    out = tmp_path / "slides.gif"
    assert (
        main(
            [
                "movie",
                str(tmp_path / "rollout.nc"),
                "--truth",
                str(tmp_path / "truth.nc"),
                "--panels",
                "truth",
                "mean",
                "--width",
                "200",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert f"wrote {out}: {LEADS} frames" in capsys.readouterr().out
    assert len(iio.imread(out, index=None)) == LEADS

    assert (
        main(
            [
                "movie",
                str(tmp_path / "rollout.nc"),
                "--panels",
                "blur",
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    assert "unknown panel 'blur'; valid choices" in capsys.readouterr().err
    assert main(["movie", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "missing.nc" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_the_command_rolls_a_zoo_model_out_and_films_it(tmp_path, capsys):
    out = tmp_path / "rb.mp4"
    assert (
        main(
            [
                "movie",
                "rayleigh_benard-diffusion-ae1024",
                "--horizon",
                "3",
                "--members",
                "2",
                "--steps",
                "2",
                "--width",
                "320",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    frames = iio.imread(out, index=None, plugin="FFMPEG")
    assert frames.shape[0] == 3 and frames.shape[2] == 320
    assert main(["movie", "rayleigh_benard-diffusion-ae9", "--out", str(out)]) == 2
    assert "rayleigh_benard-diffusion-ae64" in capsys.readouterr().err  # the valid names
