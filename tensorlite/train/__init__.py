"""Training a GPT: the config, ``build(config)`` (the parts of a run), the loop and the run folder.

    from tensorlite.train import TrainConfig, train
    result = train(TrainConfig().replace(steps=100, d_model=32))
"""

from .build import Parts, build, build_tokenizer, language_model_loss, load_text, unigram_entropy
from .config import DataConfig, OptimConfig, RunConfig, TrainConfig
from .loop import NonFiniteLossError, RunResult, Trainer, TrainingInterrupted, sample_text, train
from .run_dir import config_from_json, load_run, read_config, read_tokenizer

__all__ = [
    "DataConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "Parts",
    "RunConfig",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "build",
    "build_tokenizer",
    "config_from_json",
    "language_model_loss",
    "load_run",
    "load_text",
    "read_config",
    "read_tokenizer",
    "sample_text",
    "train",
    "unigram_entropy",
]
