"""`panel serve app` (what `make app` runs) serves a page that renders the engine's systems."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_panel_serve_app_answers_with_the_page():
    port = _free_port()
    panel = Path(sys.executable).with_name("panel")
    server = subprocess.Popen(
        [str(panel), "serve", "app", "--port", str(port), "--address", "127.0.0.1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=10) as reply:
                    page = reply.read().decode()
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not answer within 60 s"
                time.sleep(0.5)
        assert reply.status == 200
        assert "<title>latentsim</title>" in page
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_app_script_runs_and_lists_every_system():
    import runpy

    from app.overview import systems_markdown
    from engine.systems import SYSTEM_NAMES

    namespace = runpy.run_path(str(REPO / "app" / "main.py"))
    assert namespace["INTRO"].strip().startswith("# latentsim")
    table = systems_markdown()
    for name in SYSTEM_NAMES:
        assert f"`{name}`" in table
    assert "Reynolds [100, 500]" in table and "boundary ∈ {periodic, open}" in table
