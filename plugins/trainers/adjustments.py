"""Model adjustments the config asks for: frozen embeddings or layers, a fresh head, LoRA.

They run before training, in this order: ``training.freeze_embeddings``, ``training.freeze_layers``
and ``training.reinit_head`` (``apply_config``), then the regularizers' ``prepare``, then LoRA
(``add_lora``) last, so a regularizer that anchors to the pretrained weights (L2-SP, EWC) sees
plain weights and LoRA's own dropout is left to ``training.lora.dropout``.

A model saved with ``lora.save: adapter`` is a folder with the adapters, the model config and the
tokenizer; ``load_pretrained`` loads such a folder (base model plus adapters, merged) as readily as
a plain one, so prediction and the next cycle work with either.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from tuneloop.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"


def apply_config(model: Any, training: Any, task: str) -> Any:
    """Apply the config's freezing and head settings to ``model``; return it."""
    if training.freeze_embeddings:
        freeze_embeddings(model)
    if training.freeze_layers:
        freeze_first_layers(model, training.freeze_layers)
    if training.reinit_head:
        if task != "classification":
            raise ConfigError("config", ["training.reinit_head: only a classification model has "
                                         "a task head of its own (a language model's output layer "
                                         "is its vocabulary)"])
        reinit_head(model)
    return model


def freeze_embeddings(model: Any) -> None:
    """Stop training the embeddings: the ``embeddings`` block of BERT-like encoders (words,
    positions, token types, their norm), or the input and position embeddings of decoders.

    A decoder that ties its output layer to the input embeddings (GPT-2) freezes that layer too:
    they are one tensor.
    """
    base = model.base_model
    block = getattr(base, "embeddings", None)
    modules = [block] if isinstance(block, torch.nn.Module) else [model.get_input_embeddings()]
    for name in ("wpe", "embed_positions"):
        extra = getattr(base, name, None)
        if isinstance(extra, torch.nn.Module):
            modules.append(extra)
    for module in modules:
        module.requires_grad_(False)


def transformer_layers(model: Any) -> torch.nn.ModuleList:
    """The model's list of transformer layers (``encoder.layer``, ``h``, ``layers``...): the first
    module list as long as the config's layer count."""
    count = getattr(model.config, "num_hidden_layers", None)
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError("config", [f"training.freeze_layers: cannot find the transformer layers of "
                                 f"{type(model).__name__}"])


def freeze_first_layers(model: Any, count: int) -> None:
    """Stop training the first ``count`` transformer layers (the ones nearest the input)."""
    layers = transformer_layers(model)
    if count > len(layers):
        raise ConfigError("config", [f"training.freeze_layers: the model has {len(layers)} layers, "
                                     f"cannot freeze {count}"])
    for layer in layers[:count]:
        layer.requires_grad_(False)


def reinit_head(model: Any) -> None:
    """Re-initialise every layer outside the encoder (the head), whatever the model calls it."""
    encoder = model.base_model
    for child in model.children():
        if child is encoder:
            continue
        for module in child.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


# --------------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------------


def add_lora(model: Any, settings: Any, task: str) -> Any:
    """Wrap ``model`` with LoRA adapters (peft): only the adapters (and a classifier's head)
    train."""
    import peft

    task_type = peft.TaskType.SEQ_CLS if task == "classification" else peft.TaskType.CAUSAL_LM
    config = peft.LoraConfig(task_type=task_type, r=settings.r, lora_alpha=settings.alpha,
                             lora_dropout=settings.dropout, target_modules=settings.target_modules)
    try:
        with peft_quietly():
            return peft.get_peft_model(model, config)
    except ValueError as error:
        raise ConfigError("config", [f"training.lora: {str(error).splitlines()[0]} (set "
                                     f"training.lora.target_modules)"]) from None


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """peft asks transformers a deprecated question (``is_gradient_checkpointing``): its
    FutureWarning is peft's to fix, not the user's to read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def save_model(model: Any, tokenizer: Any, directory: Path, lora_save: str | None) -> None:
    """Save ``model`` and ``tokenizer`` to ``directory``; a LoRA model merged or as adapters."""
    if is_peft_model(model):
        if lora_save == "adapter":
            model.save_pretrained(str(directory))
            model.base_model.model.config.save_pretrained(str(directory))  # labels, architecture
            tokenizer.save_pretrained(str(directory))
            return
        model = model.merge_and_unload()
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def is_peft_model(model: Any) -> bool:
    try:
        import peft
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, peft.PeftModel)


def is_adapter_folder(model_dir: str) -> bool:
    return (Path(model_dir) / ADAPTER_CONFIG).is_file()


def load_pretrained(auto_class: Any, model_dir: str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(model_dir, **kwargs)``, for a plain model or an adapter folder.

    An adapter folder loads its base model (named in ``adapter_config.json``) with the folder's
    config, adds the adapters and merges them; when ``kwargs`` ask for something else (another label
    set), the merged model is saved to a temporary folder and loaded from there with them. What
    comes back is a plain model either way.
    """
    if not is_adapter_folder(model_dir):
        return auto_class.from_pretrained(model_dir, **kwargs)
    import tempfile

    import peft
    from transformers import AutoConfig

    adapter_config = json.loads((Path(model_dir) / ADAPTER_CONFIG).read_text())
    base_name = adapter_config["base_model_name_or_path"]
    config = AutoConfig.from_pretrained(model_dir)
    base = auto_class.from_pretrained(base_name, config=config, ignore_mismatched_sizes=True)
    with peft_quietly():
        merged = peft.PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    if not kwargs:
        return merged
    with tempfile.TemporaryDirectory(prefix="tuneloop-merged-") as folder:
        merged.save_pretrained(folder)
        return auto_class.from_pretrained(folder, **kwargs)
