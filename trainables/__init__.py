"""One trainable per trial: data, models, imbalance strategies, augmentation and the training loop."""

from trainables.augmentation import augment_batch
from trainables.checkpoints import EVERY_EPOCH, CheckpointPolicy, asha_rungs, load_state, save_state
from trainables.config import DEFAULTS, OPTIMIZERS, TrialConfig
from trainables.data import DIGITS_IMAGE_SIZE, Dataset, Split, load_datasets, preferred_image_size, resize_images
from trainables.embedded import PNEUMONIA
from trainables.errors import InputError
from trainables.imbalance import ImbalanceSetup, create_strategy, list_strategies, register_strategy
from trainables.loader import BatchLoader
from trainables.metrics import METRIC_MODES, TIE_BREAKERS, classification_metrics, guarded_objective, tiebroken_objective
from trainables.models import (
    ModelSpec,
    check_input_size,
    create_model,
    get_spec,
    list_models,
    load_pretrained_state,
    register_model,
    weights_path,
)
from trainables.train import (
    EarlyStopping,
    evaluate_split,
    image_size_for,
    kept_model,
    run_trial,
    train_fn,
)

__all__ = [
    "DEFAULTS", "DIGITS_IMAGE_SIZE", "EVERY_EPOCH", "METRIC_MODES", "OPTIMIZERS", "PNEUMONIA", "TIE_BREAKERS", "asha_rungs",
    "augment_batch", "BatchLoader", "check_input_size", "CheckpointPolicy", "classification_metrics",
    "create_model", "create_strategy", "Dataset", "EarlyStopping", "evaluate_split", "get_spec",
    "guarded_objective", "image_size_for", "ImbalanceSetup", "InputError", "kept_model", "list_models",
    "list_strategies", "load_datasets", "load_pretrained_state", "load_state", "ModelSpec", "preferred_image_size",
    "register_model", "register_strategy", "resize_images", "run_trial", "save_state", "Split",
    "tiebroken_objective", "train_fn", "TrialConfig", "weights_path",
]
