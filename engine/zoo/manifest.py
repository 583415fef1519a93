"""The zoo's manifest: which shipped models exist, where, and whether they can be trusted.

`assets/manifest.json` lists every published model with the SHA-256 of its weights and
card. `load_zoo()` checks each entry against the files on disk; a missing, corrupt or
tampered model (or a latent emulator whose autoencoder is unusable, or was republished
after the emulator was trained on its latents) is reported by name
in `Zoo.problems` and left out of `Zoo.available()`, while the rest stays usable. The
app builds its menus from `available()`; notebooks and the CLI use `Zoo.pipeline()`.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.data.atomic import atomic_open
from engine.errors import DataFormatError, ParameterError, UnknownNameError
from engine.hashing import file_sha256
from engine.model_files import load_model_card, model_paths
from engine.paths import assets_root

FORMAT = "latentsim-zoo"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# ZooEntry fields that are not in the manifest: the stem's location and what the card says.
CARD_FIELDS = ("name", "path", "window", "frame_stride", "trained_on")


@dataclass(frozen=True)
class ZooEntry:
    """One published model. `path` is the absolute model stem (no suffix).

    `kind` is the model's role, as in its card ("autoencoder" | "emulator"); an emulator's
    own kind (engine.emulator.KINDS) is `method` here. `window`, `frame_stride` and
    `trained_on` (the SHA-256 of the autoencoder weights a latent emulator was trained on)
    are read from an emulator's card when the zoo is loaded (None for autoencoders).
    """

    name: str
    kind: str  # role: "autoencoder" | "emulator"
    system: str
    method: str | None  # emulator kind: "diffusion" | "deterministic"
    space: str | None  # "latent" | "pixel" (emulators)
    rate: int | None  # compression rate; None for pixel-space emulators
    autoencoder: str | None  # zoo name of a latent emulator's autoencoder
    asset: str  # stem relative to assets/
    weights_sha256: str
    card_sha256: str
    command: tuple[str, ...]
    description: str
    path: Path
    window: int | None = None  # frames per emulator call, L
    frame_stride: int | None = None  # stored frames per emulator step, Δ
    trained_on: str | None = None  # autoencoder weights' SHA-256 in a latent emulator's card

    def record(self) -> dict[str, Any]:
        """The manifest's JSON object for this entry (card fields stay in the card)."""
        data = asdict(self)
        for card_field in CARD_FIELDS:
            del data[card_field]
        data["command"] = list(self.command)
        return data

    @property
    def label(self) -> str:
        """Short menu label: "diffusion, latent x64", "deterministic, pixel space"."""
        if self.kind == "autoencoder":
            return f"autoencoder x{self.rate}"
        where = f"latent x{self.rate}" if self.space == "latent" else "pixel space"
        return f"{self.method}, {where}"


class Zoo:
    """The verified view of a manifest: usable entries and named problems."""

    def __init__(self, root: Path, entries: Mapping[str, ZooEntry], problems: Mapping[str, str]):
        self.root = root
        self.entries = dict(entries)
        self.problems = dict(problems)

    def available(self, **filters: Any) -> list[ZooEntry]:
        """Usable entries whose fields equal every filter, e.g. available(system=...)."""
        unknown = sorted(set(filters) - set(ZooEntry.__dataclass_fields__))
        if unknown:
            raise ParameterError("zoo filter", unknown[0], ", ".join(ZooEntry.__dataclass_fields__))
        return [
            entry
            for name, entry in self.entries.items()
            if name not in self.problems
            and all(getattr(entry, key) == value for key, value in filters.items())
        ]

    def get(self, name: str) -> ZooEntry:
        """A usable entry by name; a listed but unusable one raises with the reason."""
        if name in self.problems:
            raise DataFormatError(name, self.problems[name])
        if name not in self.entries:
            raise UnknownNameError("zoo model", name, self.entries)
        return self.entries[name]

    def systems(self) -> list[str]:
        return sorted({entry.system for entry in self.available(kind="emulator")})

    def rates(self, system: str) -> list[int]:
        """Compression rates with at least one usable latent emulator, lowest first."""
        return sorted({e.rate for e in self.available(system=system, space="latent") if e.rate})

    def emulator(self, system: str, method: str, rate: int | None) -> ZooEntry:
        """The emulator of `system` with `method` at `rate` (None: pixel space)."""
        space = "pixel" if rate is None else "latent"
        found = self.available(
            kind="emulator", system=system, method=method, space=space, rate=rate
        )
        if not found:
            options = [e.label for e in self.available(kind="emulator", system=system)]
            raise ParameterError(
                "emulator",
                f"{system} {method} {'pixel' if rate is None else rate}",
                f"one of the zoo's: {', '.join(options) or 'none for this system'}",
            )
        return found[0]

    def card(self, name: str) -> dict[str, Any]:
        return load_model_card(self.get(name).path)

    def pipeline(self, name: str, device: str = "auto"):
        """A ready `engine.pipeline.Pipeline` for an emulator entry (with its autoencoder)."""
        from engine.pipeline import Pipeline

        entry = self.get(name)
        if entry.kind != "emulator":
            raise ParameterError("zoo model", name, "an emulator")
        autoencoder = self.get(entry.autoencoder).path if entry.autoencoder else None
        return Pipeline.load(entry.path, autoencoder, device)


def manifest_path(root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root if root is not None else assets_root()) / MANIFEST_NAME


def read_manifest(root: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's raw entries (name -> record); {} when there is no manifest yet."""
    path = manifest_path(root)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(path, f"unreadable zoo manifest: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataFormatError(path, f"not a {FORMAT} manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            path,
            f"format_version {data.get('format_version')!r}; this version reads {FORMAT_VERSION}",
        )
    models = data.get("models")
    if not isinstance(models, dict):
        raise DataFormatError(path, "manifest lacks a 'models' mapping")
    return models


def load_zoo(root: str | os.PathLike[str] | None = None) -> Zoo:
    """Read the manifest under `root` (default assets/) and verify every listed file."""
    root = Path(root if root is not None else assets_root()).resolve()
    entries: dict[str, ZooEntry] = {}
    problems: dict[str, str] = {}
    for name, record in read_manifest(root).items():
        try:
            entry = _entry(root, name, record)
        except (KeyError, TypeError, ValueError) as err:
            problems[name] = f"malformed manifest entry: {err!s}"
            continue
        problem = file_problem(entry)
        if problem:
            problems[name] = problem
        elif entry.kind == "emulator":
            entry, problems[name] = _with_card_fields(entry)
            if problems[name] is None:
                del problems[name]
        entries[name] = entry
    for name, entry in entries.items():  # emulators whose autoencoder is unusable
        if name not in problems and entry.autoencoder:
            problem = _autoencoder_problem(entry, entries, problems)
            if problem:
                problems[name] = problem
    return Zoo(root, entries, problems)


def _autoencoder_problem(
    entry: ZooEntry, entries: Mapping[str, ZooEntry], problems: Mapping[str, str]
) -> str | None:
    """Why a latent emulator cannot run on the published autoencoder, or None.

    An autoencoder republished after retraining has other latents: the emulator trained
    on the old ones would decode garbage, so it stays out until it is retrained too.
    """
    autoencoder = entries.get(entry.autoencoder)
    if autoencoder is None:
        return f"its autoencoder {entry.autoencoder} is not in the manifest"
    if entry.autoencoder in problems:
        return f"its autoencoder {entry.autoencoder} is unusable"
    mismatch = autoencoder_mismatch(entry.trained_on, autoencoder)
    if mismatch:
        return f"{mismatch}: retrain it (latentsim zoo train --only {entry.name})"
    return None


def trained_on(card: Mapping[str, Any]) -> str | None:
    """The SHA-256 of the autoencoder weights a latent emulator's card was trained on."""
    return (card.get("autoencoder") or {}).get("sha256")


def autoencoder_mismatch(recorded: str | None, autoencoder: ZooEntry) -> str | None:
    """Why weights trained on the autoencoder hashed `recorded` do not fit the published
    `autoencoder`, or None when they were trained on it."""
    if recorded == autoencoder.weights_sha256:
        return None
    return (
        f"trained on autoencoder weights {str(recorded)[:12]}..., not the published "
        f"{autoencoder.name} ({autoencoder.weights_sha256[:12]}...)"
    )


def _with_card_fields(entry: ZooEntry) -> tuple[ZooEntry, str | None]:
    """The entry with its card's window, frame stride and autoencoder hash, or why they
    are unusable."""
    try:
        card = load_model_card(entry.path)
        window, stride = card["window"], card["frame_stride"]
    except (DataFormatError, KeyError) as err:
        return entry, f"unusable emulator card: {err!s}"
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (window, stride)) or (
        window < 2 or stride < 1
    ):
        return entry, f"emulator card has window={window!r}, frame_stride={stride!r}"
    return replace(entry, window=window, frame_stride=stride, trained_on=trained_on(card)), None


def file_problem(entry: ZooEntry) -> str | None:
    """Why the entry's files cannot be trusted, or None when both hashes match."""
    weights, card = model_paths(entry.path)
    for path, wanted, what in (
        (card, entry.card_sha256, "card"),
        (weights, entry.weights_sha256, "weights"),
    ):
        if not path.exists():
            return f"{what} file {path.name} is missing"
        if file_sha256(path) != wanted:
            return f"{what} file {path.name} does not match the manifest's SHA-256 (modified?)"
    return None


@contextmanager
def locked_manifest(root: str | os.PathLike[str] | None = None) -> Iterator[dict[str, Any]]:
    """Read-modify-write the manifest's entries under an exclusive lock.

    Several `latentsim zoo train --system S` processes may publish at once; the lock
    makes each update see the others', and the atomic write means a reader never sees
    a half-written manifest.
    """
    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".manifest.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        models = read_manifest(root)
        yield models
        text = json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "models": dict(sorted(models.items())),
            },
            indent=1,
        )
        with atomic_open(path, "w") as handle:
            handle.write(text + "\n")


def _entry(root: Path, name: str, record: Mapping[str, Any]) -> ZooEntry:
    fields = {key: record[key] for key in ZooEntry.__dataclass_fields__ if key not in CARD_FIELDS}
    asset = str(fields["asset"])
    if Path(asset).is_absolute() or ".." in Path(asset).parts:
        raise ValueError(f"asset {asset!r} must be a path inside assets/")
    fields["command"] = tuple(fields["command"])
    return ZooEntry(name=name, path=root / asset, **fields)
