"""The TALLRec-style trainable recommender: prompts, LoRA, deterministic trainer, P(Yes), metrics.

Every unlearning and federated method trains and scores through this package::

    model, tok = load_base_model("default")                 # SmolLM2-135M (or an HF folder / .gguf)
    model = attach_lora(model, TrainConfig(seed=0))
    out = train_lora(model, tok, train_samples, TrainConfig())
    p_yes = score_samples(model, tok, test_samples)
    evaluate_scores([s.label for s in test_samples], p_yes)  # {"auc", "acc", "logloss", ...}
"""

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.evaluate import evaluate_scores
from recaudit.tallrec.lora import (
    LoraState,
    attach_lora,
    file_sha256,
    init_lora_state,
    load_lora,
    load_lora_state_dict,
    lora_state_dict,
    reset_lora,
    save_lora,
    states_equal,
)
from recaudit.tallrec.model import load_base_model
from recaudit.tallrec.prompts import (
    PromptTemplate,
    TallRecSample,
    alpaca_template,
    build_samples,
    default_template,
    split_samples,
)
from recaudit.tallrec.scoring import sample_outputs, score_samples, score_with_adapter
from recaudit.tallrec.trainer import (
    EarlyStopOutput,
    StepInfo,
    StopTraining,
    TallRecTrainer,
    TrainOutput,
    few_shot,
    fit_lora,
    optimise,
    train_early_stopping,
    train_lora,
)

__all__ = [
    "EarlyStopOutput",
    "StopTraining",
    "alpaca_template",
    "few_shot",
    "fit_lora",
    "train_early_stopping",
    "LoraState",
    "PromptTemplate",
    "StepInfo",
    "TallRecSample",
    "TallRecTrainer",
    "TrainConfig",
    "TrainOutput",
    "attach_lora",
    "build_samples",
    "default_template",
    "derive_seed",
    "evaluate_scores",
    "file_sha256",
    "init_lora_state",
    "load_base_model",
    "load_lora",
    "load_lora_state_dict",
    "lora_state_dict",
    "optimise",
    "reset_lora",
    "sample_outputs",
    "save_lora",
    "score_samples",
    "score_with_adapter",
    "split_samples",
    "states_equal",
    "train_lora",
]
