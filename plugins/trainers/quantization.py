"""k-bit loading for QLoRA (``model.quantization: {bits: 4|8}``): bitsandbytes and peft.

The start model's linear layers load as 4-bit (NF4 by default, with double quantization, as in
the QLoRA paper) or 8-bit bitsandbytes layers, through transformers' ``BitsAndBytesConfig``;
peft's ``prepare_model_for_kbit_training`` then freezes the quantized weights, keeps the norms and
the output layer in fp32 and makes the inputs require gradients, and LoRA adapters
(``training.lora``, required) train on top. ``tuneloop validate`` refuses the setting where it
cannot run (no CUDA GPU, no bitsandbytes, no LoRA: see ``tuneloop.config``).

The saved model: with ``lora.save: adapter`` the adapters alone (the next cycle and ``predict``
load the base again, quantized); with ``lora.save: merged`` (the default) the adapters are merged
into the base model loaded again in ``compute_dtype``, not into the quantized weights, so the
saved model is a plain full-precision one (as QLoRA users merge).

bitsandbytes is imported by transformers only when a quantized model loads (the ``gpu`` extra
installs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneloop.errors import TuneloopError


def compute_dtype(settings: Any) -> Any:
    import torch

    if settings.compute_dtype == "auto":
        return (torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                else torch.float16)
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        settings.compute_dtype]


def loading_arguments(settings: Any) -> dict[str, Any]:
    """``from_pretrained`` keywords that load the weights in ``settings.bits`` bits on this
    process's GPU."""
    import os

    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise TuneloopError(f"model.quantization: {settings.bits}-bit loading (bitsandbytes) "
                            f"needs a CUDA GPU, and this machine has none")
    if settings.bits == 4:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=settings.quant_type,
                                    bnb_4bit_use_double_quant=settings.double_quant,
                                    bnb_4bit_compute_dtype=compute_dtype(settings))
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    # each process holds the whole quantized model on its own GPU (torchrun: LOCAL_RANK)
    return {"quantization_config": config, "dtype": compute_dtype(settings),
            "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def prepare_for_training(model: Any, gradient_checkpointing: bool) -> Any:
    """peft's k-bit preparation (frozen quantized weights, fp32 norms, input gradients), with
    non-reentrant activation checkpointing when asked for."""
    import peft

    from tuneloop.plugins.trainers.adjustments import peft_quietly

    with peft_quietly():
        return peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})


def is_quantized(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_quantized", False)
                or getattr(base.config, "quantization_config", None))


def save_merged(model: Any, tokenizer: Any, directory: Path, settings: Any) -> None:
    """Merge a quantized model's LoRA adapters into its base loaded again unquantized (in
    ``compute_dtype``), and save that: merging into 4-bit weights would round the update away."""
    import tempfile

    import peft
    from transformers import AutoModelForCausalLM

    from tuneloop.plugins.trainers.adjustments import peft_quietly

    base_name = model.peft_config["default"].base_model_name_or_path
    with tempfile.TemporaryDirectory(prefix="tuneloop-adapter-") as adapter:
        model.save_pretrained(adapter)
        base = AutoModelForCausalLM.from_pretrained(base_name, dtype=compute_dtype(settings))
        with peft_quietly():
            merged = peft.PeftModel.from_pretrained(base, adapter).merge_and_unload()
    merged.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
