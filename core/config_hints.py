"""'Did you mean training.epochs?': hints for config keys tuneloop does not know.

People arrive with configs from transformers' ``TrainingArguments``, TRL, Axolotl and
LLaMA-Factory, and type their keys from memory (``num_train_epochs``, ``micro_batch_size``,
``lora_r``). pydantic only says "Extra inputs are not permitted"; this module says where the
setting lives in tuneloop. For an unknown key it tries, in order:

1. ``TRAINER_OPTIONS``: a setting that is a trainer's option here (``gradient_checkpointing``,
   ``packing``), hinted as ``training.trainer.<option>`` when a registered trainer has it;
   ``FOREIGN_KEYS``: another tool's name for a tuneloop setting, with where it lives and, where
   the value means something different (``warmup_steps`` against ``warmup_ratio``), how;
2. a tuneloop field of that exact name in another section (``learning_rate`` under ``model``);
3. ``difflib``'s closest field names of the section the key is in (``epoch`` -> ``epochs``), then
   of the foreign names (``num_train_epoch``).

The table's targets are checked by tests against the config model and the causal-LM trainer's
options, so a hint cannot point at a setting that does not exist.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Iterator

from pydantic import BaseModel

#: another tool's key -> (the tuneloop setting, what to know about it; "" when it is the same)
FOREIGN_KEYS: dict[str, tuple[str, str]] = {
    # ---- epochs, batches, steps (transformers TrainingArguments, TRL, Axolotl, LLaMA-Factory) ---
    "num_train_epochs": ("training.epochs", ""),
    "num_epochs": ("training.epochs", ""),
    "max_steps": ("training.epochs", "tuneloop counts epochs; a fraction such as 0.5 is allowed"),
    "per_device_train_batch_size": ("training.batch_size", "per process, as in transformers"),
    "micro_batch_size": ("training.batch_size", "per process, as in Axolotl"),
    "train_batch_size": ("training.batch_size", ""),
    "per_device_eval_batch_size": ("training.eval_batch_size", ""),
    "eval_batch_size": ("training.eval_batch_size", ""),
    "gradient_accumulation_steps": ("training.gradient_accumulation", ""),
    "lr": ("training.learning_rate", ""),
    "lr_scheduler_type": ("training.schedule", "constant, linear, cosine or step"),
    "lr_scheduler": ("training.schedule", "constant, linear, cosine or step"),
    "warmup_steps": ("training.warmup_ratio", "a fraction of the training steps, not a count"),
    "optim": ("training.optimizer", "adamw, sgd, adafactor, adagrad or rmsprop"),
    "optimizer_type": ("training.optimizer", "adamw, sgd, adafactor, adagrad or rmsprop"),
    "bf16": ("training.precision", "precision: bf16; auto already picks it on a GPU that has it"),
    "fp16": ("training.precision", "precision: fp16"),
    "tf32": ("training.precision", "auto, fp32, bf16 or fp16"),
    "pure_bf16": ("training.precision", "precision: bf16"),
    "data_seed": ("data.split.seed", "the seed that decides each example's split"),
    # ---- evaluation and checkpoints ----------------------------------------------------------
    "metric_for_best_model": ("training.select_metric", ""),
    "greater_is_better": ("training.select_metric", "the direction follows the metric"),
    "load_best_model_at_end": ("training.select_metric",
                               "tuneloop always keeps the best checkpoint by select_metric"),
    "eval_strategy": ("training.eval_every", "epoch, or a number of steps"),
    "evaluation_strategy": ("training.eval_every", "epoch, or a number of steps"),
    "eval_steps": ("training.eval_every", "epoch, or a number of steps"),
    "evals_per_epoch": ("training.eval_every", "epoch, or a number of steps"),
    "save_strategy": ("training.eval_every", "checkpoints follow the validation schedule"),
    "save_steps": ("training.eval_every", "checkpoints follow the validation schedule"),
    "early_stopping_patience": ("training.regularizers",
                                "- {name: early_stopping, metric: loss, patience: N}"),
    # ---- regularization ----------------------------------------------------------------------
    "weight_decay": ("training.regularizers", "- {name: weight_decay, value: 0.01}"),
    "max_grad_norm": ("training.regularizers", "- {name: gradient_clipping, max_norm: 1.0}"),
    "label_smoothing_factor": ("training.regularizers", "- {name: label_smoothing, value: 0.1}"),
    # ---- LoRA / QLoRA ------------------------------------------------------------------------
    "lora_r": ("training.lora.r", ""),
    "lora_rank": ("training.lora.r", ""),
    "lora_alpha": ("training.lora.alpha", ""),
    "lora_dropout": ("training.lora.dropout", ""),
    "lora_target_modules": ("training.lora.target_modules", ""),
    "lora_target": ("training.lora.target_modules", ""),
    "lora_target_linear": ("training.lora.target_modules", "target_modules: all-linear"),
    "adapter": ("training.lora", "lora: {r: 8, alpha: 16} turns LoRA on"),
    "finetuning_type": ("training.lora", "lora: {r: 8, alpha: 16} turns LoRA on"),
    "use_peft": ("training.lora", "lora: {r: 8, alpha: 16} turns LoRA on"),
    "load_in_4bit": ("model.quantization", "quantization: {bits: 4} (QLoRA; needs CUDA)"),
    "load_in_8bit": ("model.quantization", "quantization: {bits: 8} (needs CUDA)"),
    "quantization_bit": ("model.quantization", "quantization: {bits: 4} (needs CUDA)"),
    # ---- model and sequence length -----------------------------------------------------------
    "base_model": ("model.name", "a hub id, a local folder or package:<module>/<path>"),
    "model_name_or_path": ("model.name", "a hub id, a local folder or package:<module>/<path>"),
    "model_name": ("model.name", ""),
    "model_id": ("model.name", ""),
    "max_seq_length": ("model.max_length", "tokens per example"),
    "sequence_len": ("model.max_length", "tokens per example"),
    "cutoff_len": ("model.max_length", "tokens per example"),
    "model_max_length": ("model.max_length", "tokens per example"),
    "max_seq_len": ("model.max_length", "tokens per example"),
    # ---- data --------------------------------------------------------------------------------
    "datasets": ("data.sources", "- {type: alpaca, path: data.json} (or sharegpt, jsonl, ...)"),
    "dataset": ("data.sources", "- {type: dataset_info, path: data/dataset_info.json, "
                                "dataset: NAME} for a LLaMA-Factory entry"),
    "dataset_dir": ("data.sources", "- {type: dataset_info, path: DIR/dataset_info.json, "
                                    "dataset: NAME}"),
    "train_file": ("data.sources", "- {type: jsonl, path: FILE}"),
    "dataset_text_field": ("data.sources", "each source's fields: {input: COLUMN}"),
    "val_set_size": ("data.split.validation", "a fraction of the data"),
    "eval_split_size": ("data.split.validation", "a fraction of the data"),
    "val_size": ("data.split.validation", "a fraction of the data"),
    "test_size": ("data.split.test", "a fraction of the data"),
    "template": ("data.sources", "chats use the model tokenizer's chat template; a source's "
                                 "chat_format: plain renders role: text lines instead"),
    "chat_template": ("data.sources", "chats use the model tokenizer's chat template; a source's "
                                      "chat_format: plain renders role: text lines instead"),
    # ---- experiment tracking -----------------------------------------------------------------
    "wandb_project": ("training.report_to", "report_to: [wandb]; the project comes from "
                                            "WANDB_PROJECT"),
    "use_wandb": ("training.report_to", "report_to: [wandb]"),
    "use_mlflow": ("training.report_to", "report_to: [mlflow]"),
    # ---- where things are written ------------------------------------------------------------
    "output_dir": ("runs_dir", "each cycle writes runs/cycle-N; tuneloop models export DIR "
                               "writes a model folder"),
    "logging_dir": ("runs_dir", "TensorBoard files go to runs/cycle-N/tensorboard"),
    "resume_from_checkpoint": ("runs_dir", "run tuneloop run CONFIG --resume"),
    # ---- where training.trainer takes them: trainer options --------------------------------
    "stage": ("training.trainer", "trainer: causal_lm_sft (sft), dpo or kto"),
    "rl_type": ("training.trainer", "trainer: causal_lm_sft (sft), dpo or kto"),
}

#: another tool's key -> (the trainer option it is, an example value): hinted as
#: ``training.trainer.<option>`` when a registered trainer has that option
TRAINER_OPTIONS: dict[str, tuple[str, str]] = {
    "gradient_checkpointing": ("gradient_checkpointing", "true"),
    "packing": ("packing", "true"),
    "sample_packing": ("packing", "true"),
    "fsdp": ("fsdp", "{}"),
    "fsdp_config": ("fsdp", "{}"),
    "max_new_tokens": ("max_new_tokens", "64"),
    "temperature": ("temperature", "0.7"),
    "top_p": ("top_p", "0.9"),
    "num_return_sequences": ("num_return_sequences", "2"),
    "stop_strings": ("stop", '["\\n\\n"]'),
    "dpo_beta": ("beta", "0.1"),
    "pref_beta": ("beta", "0.1"),
    "beta": ("beta", "0.1"),
}


def hint(location: tuple, root: type[BaseModel]) -> str | None:
    """A "did you mean ...?" for the unknown key at ``location`` of a ``root`` config, or None."""
    if not location or not isinstance(location[-1], str):
        return None
    key = location[-1]
    section = ".".join(str(part) for part in location[:-1] if isinstance(part, str))
    if key in TRAINER_OPTIONS:
        option, example = TRAINER_OPTIONS[key]
        owners = trainers_with_option(option)
        if owners:
            return (f"did you mean training.trainer.{option}? (trainer: {{name: {owners[0]}, "
                    f"{option}: {example}}}" + (f"; also {', '.join(owners[1:])}" if owners[1:]
                                                 else "") + ")")
    if key in FOREIGN_KEYS:
        target, note = FOREIGN_KEYS[key]
        if _field_exists(root, target):
            return f"did you mean {target}?" + (f" ({note})" if note else "")
    elsewhere = [path for path in field_paths(root) if path.rsplit(".", 1)[-1] == key
                 and path.rsplit(".", 1)[0] != section]
    if elsewhere:
        return f"did you mean {' or '.join(elsewhere[:3])}?"
    model = section_model(root, location[:-1])
    if model is not None:
        close = difflib.get_close_matches(key, list(model.model_fields), n=2, cutoff=0.7)
        if close:
            prefix = f"{section}." if section else ""
            return f"did you mean {' or '.join(prefix + name for name in close)}?"
    close = difflib.get_close_matches(key, list(FOREIGN_KEYS), n=1, cutoff=0.85)
    if close:
        return f'did you mean {FOREIGN_KEYS[close[0]][0]}? ("{close[0]}" elsewhere)'
    return None


def _field_exists(root: type[BaseModel], path: str) -> bool:
    return path in set(field_paths(root))


def trainers_with_option(option: str) -> list[str]:
    """The registered trainers whose options include ``option`` (the built-in causal-LM ones
    first, as registered)."""
    from tuneloop import registries

    try:
        found = registries.build()["trainers"]
        return [name for name in found.names()
                if option in getattr(found.get(name).Options, "model_fields", {})]
    except Exception:  # a hint must never hide the error it explains
        return []


def field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field of ``model`` as a dotted path, nested sections included."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from field_paths(nested, path + ".")


def section_model(root: type[BaseModel], location: tuple) -> type[BaseModel] | None:
    """The pydantic model of the section at ``location`` (list positions skipped), or None."""
    model: type[BaseModel] | None = root
    for part in location:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_of(model.model_fields[part].annotation)
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel in an annotation such as ``LoraConfig | None`` or ``list[Rule]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        for argument in typing.get_args(annotation):
            found = _model_of(argument)
            if found is not None:
                return found
    return None
