"""The explorer without a server, as the headless app tests use it."""

from __future__ import annotations

import asyncio
from typing import Any

from app.shell import ExplorerApp
from engine.zoo import Zoo

# Small enough to run in a test: 3 members, 2 euler steps, 6 frames (3 blocks of 2).
TEST_SETTINGS = {"members": 3, "steps": 2, "sampler": "euler", "horizon": 6}


def explorer(zoo: Zoo, **options: Any) -> ExplorerApp:
    """An ExplorerApp on `zoo` (ExplorerApp `options`) with the test settings selected."""
    app = ExplorerApp(zoo=zoo, **options)
    app.state.param.update(**TEST_SETTINGS)
    return app


def run_app(app: ExplorerApp) -> None:
    """Run the selection to its end, as a click on Run does."""

    async def go():
        app.run()
        await app.runner.task

    asyncio.run(go())
