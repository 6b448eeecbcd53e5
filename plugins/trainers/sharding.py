"""FSDP for the causal-LM trainers (option ``fsdp``): models larger than one GPU's memory.

Under ``torchrun`` (or ``accelerate launch``) the shared loop trains with DDP: every process holds
the whole model. With ``fsdp`` set, transformers' ``Trainer`` hands the model to accelerate's
FSDP plugin instead (FSDP2, ``fully_shard``): each transformer block is wrapped on its own (the
model's ``_no_split_modules`` classes, GPT-2's ``GPT2Block``, Llama's ``LlamaDecoderLayer``, or
the classes ``wrap`` names), and its parameters, gradients and optimizer state are split across
the processes. Checkpoints are saved as a full state dict gathered on the main process
(``FULL_STATE_DICT``), so a checkpoint and the saved model are the same plain files as without
FSDP; resuming loads them and shards them again.

This module imports only pydantic: the options are read when the registries are built.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneloop.components import Options


class FSDPOptions(Options):
    wrap: list[str] | None = Field(
        None, description="transformer block class names to shard one by one (default: the "
                          "model's _no_split_modules, e.g. GPT2Block, LlamaDecoderLayer)")
    reshard_after_forward: bool = Field(
        True, description="free each block's gathered weights after its forward pass (full "
                          "sharding); false keeps them until the backward pass (SHARD_GRAD_OP)")
    cpu_offload: bool = Field(False, description="keep the sharded parameters in CPU memory")


def training_arguments(options: FSDPOptions) -> dict[str, Any]:
    """``TrainingArguments`` keywords for FSDP2 with a full state dict in checkpoints."""
    config: dict[str, Any] = {
        "version": 2,
        "state_dict_type": "FULL_STATE_DICT",
        "reshard_after_forward": options.reshard_after_forward,
        "cpu_offload": options.cpu_offload,
    }
    if options.wrap:
        config["transformer_layer_cls_to_wrap"] = list(options.wrap)
    return {"fsdp": "full_shard auto_wrap", "fsdp_config": config}
