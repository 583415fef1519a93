"""latentsim engine: physical systems, Well-format data, autoencoders, latent emulators.

The engine never imports the app (or panel/holoviews): notebooks, the CLI and the
dashboard all use the same public functions.
"""

__version__ = "0.1.0"
