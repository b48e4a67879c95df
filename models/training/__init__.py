"""Training: data -> encoder + detector + threshold -> a new registry version.

- :mod:`models.training.recipes`: which constructor arguments each detector gets on each stream.
- :mod:`models.training.data`: each stream's training data, encoded and cut.
- :mod:`models.training.fit`: fitting a recipe; :class:`FittedModel`, the one result type.
- :mod:`models.training.train`: ``anomstream train``.

The data preparation is shared with offline evaluation, so a detector evaluated offline is trained
exactly as ``anomstream train`` trains it.
"""

from models.training.data import TrainingData
from models.training.fit import FittedModel, fit_model
from models.training.recipes import Recipe, resolve
from models.training.train import TrainingRequest, train

__all__ = ["FittedModel", "Recipe", "TrainingData", "TrainingRequest", "fit_model", "resolve", "train"]
