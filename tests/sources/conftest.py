"""A model folder for the sources tests: a zoo manifest with no models (the app tests
build a real tiny zoo; here only the folder's recognition matters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.zoo.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME


@pytest.fixture
def zoo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("my_zoo")
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "models": {}}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return folder.resolve()
