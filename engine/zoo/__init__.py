"""The shipped model zoo: a plan of models, their training, and a verified manifest.

`load_zoo()` is what the app, notebooks and `latentsim evaluate` use to find models.
"""

from engine.zoo.manifest import Zoo, ZooEntry, load_zoo
from engine.zoo.plan import ZooModel, zoo_plan

__all__ = ["Zoo", "ZooEntry", "ZooModel", "load_zoo", "zoo_plan"]
