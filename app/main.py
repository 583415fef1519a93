"""Entry point for `panel serve app`.

Until the explorer is built this page lists the systems the engine can simulate, so the
README's app command already serves something real.
"""

import panel as pn

from app.overview import systems_markdown

pn.extension()

INTRO = """
# latentsim

Latent diffusion emulators of physics. The engine simulates the systems below with its
own validated solvers and stores their trajectories in The Well's HDF5 format. The
interactive rollout explorer (ensembles vs ground truth) is being built.
"""

pn.template.BootstrapTemplate(
    title="latentsim",
    main=[pn.pane.Markdown(INTRO), pn.pane.Markdown(systems_markdown())],
).servable()
