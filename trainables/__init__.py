"""One trainable per trial: data, models, imbalance strategies, augmentation and the training loop."""

from trainables.augmentation import augment_batch
from trainables.checkpoints import (
    ENDED_FILE,
    EVERY_EPOCH,
    HELD_OUT_FILE,
    KEPT_FILE,
    MANIFEST_FILE,
    RESUME_FILE,
    RESUME_FORMAT,
    CheckpointPolicy,
    RestorePoint,
    asha_rungs,
    delete_checkpoint_file,
    has_checkpoint_file,
    load_kept,
    load_resume,
    read_held_out,
    restore_point,
    read_history,
    restore_points,
    save_checkpoint,
)
from trainables.config import AUTO, DEFAULTS, TrialConfig
from trainables.classifier import Classifier
from trainables.data import load_datasets, preferred_image_size
from trainables.dataset import Dataset
from trainables.sources import DIGITS_IMAGE_SIZE
from trainables.splits import Split
from trainables.images import resize_images
from trainables.device import GpuMemoryError, data_device, placement
from trainables.embedded import PNEUMONIA
from trainables.errors import InputError
from trainables.imbalance import ImbalanceSetup, create_strategy, list_strategies, register_strategy
from trainables.kept import KeptModel, kept_model_from, load_kept_model
from trainables.loader import EVAL_BATCH_SIZE, BatchLoader
from trainables.metrics import classification_metrics
from trainables.objective import METRIC_MODES, TIE_BREAKERS, guarded_objective, tiebroken_objective, worst_objective
from trainables.models import (
    GpuMemory,
    GpuRecipe,
    ModelSpec,
    check_input_size,
    create_model,
    get_spec,
    list_models,
    load_pretrained_state,
    register_model,
    weights_path,
)
from trainables.optim import LR_SCHEDULES, OPTIMIZERS
from trainables.folds import FoldRun
from trainables.loop import score_split
from trainables.scores import Scores, average_scores
from trainables.stopping import EarlyStopping
from trainables.summary import ensemble_name
from trainables.train import run_trial
from trainables.trainable import train_fn

__all__ = [
    "AUTO", "DEFAULTS", "DIGITS_IMAGE_SIZE", "ENDED_FILE", "EVAL_BATCH_SIZE", "EVERY_EPOCH", "HELD_OUT_FILE", "KEPT_FILE", "LR_SCHEDULES",
    "MANIFEST_FILE", "METRIC_MODES", "OPTIMIZERS", "PNEUMONIA", "RestorePoint", "restore_point", "restore_points", "read_history",
    "RESUME_FILE", "RESUME_FORMAT", "TIE_BREAKERS", "asha_rungs", "augment_batch", "average_scores", "BatchLoader",
    "check_input_size", "CheckpointPolicy", "Classifier", "classification_metrics", "create_model", "create_strategy", "data_device",
    "delete_checkpoint_file", "Dataset", "ensemble_name", "EarlyStopping", "FoldRun", "get_spec", "GpuMemory", "GpuMemoryError",
    "GpuRecipe", "guarded_objective", "has_checkpoint_file", "ImbalanceSetup", "InputError",
    "KeptModel", "kept_model_from", "list_models", "list_strategies", "load_datasets", "load_kept", "load_kept_model", "load_pretrained_state",
    "load_resume", "ModelSpec", "read_held_out", "placement", "preferred_image_size", "register_model", "register_strategy",
    "resize_images", "run_trial", "save_checkpoint", "score_split", "Scores", "Split", "tiebroken_objective",
    "train_fn", "TrialConfig", "weights_path", "worst_objective",
]
