"""Every model-file function in one import: the generic format and the autoencoder's files.

The format lives in engine/model_format.py and each model kind's files in its package
(engine/autoencoder/files.py, engine/emulator/models.py); this module gathers the common
ones for the layers above the model packages (pipeline, stages, zoo, commands).
"""

from engine.autoencoder.files import load_autoencoder, save_autoencoder
from engine.model_format import (
    CARD_SUFFIX,
    FORMAT,
    FORMAT_VERSION,
    STORAGE_DTYPES,
    WEIGHTS_SUFFIX,
    check_card,
    check_tensors,
    copy_model,
    load_model_card,
    load_model_of_kind,
    load_state_dict,
    model_paths,
    save_model,
)

__all__ = [
    "CARD_SUFFIX",
    "FORMAT",
    "FORMAT_VERSION",
    "STORAGE_DTYPES",
    "WEIGHTS_SUFFIX",
    "check_card",
    "check_tensors",
    "copy_model",
    "load_autoencoder",
    "load_model_card",
    "load_model_of_kind",
    "load_state_dict",
    "model_paths",
    "save_autoencoder",
    "save_model",
]
