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

from pathlib import Path
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
    return {"fsdp": True, "fsdp_config": config}


def fsdp_on_cpu(trainer: Any) -> None:
    """Let several CPU processes (gloo) shard with FSDP, as GPUs do.

    accelerate turns its FSDP plugin on only for accelerator devices: with ``use_cpu`` it runs
    the processes as DDP and drops the plugin silently. FSDP2 itself (``fully_shard``) runs on
    CPU tensors over gloo, so after the Trainer made its ``Accelerator``, a CPU run whose
    arguments ask for FSDP gets the plugin back and the FSDP distributed type, the state
    accelerate would have set on GPUs. Without this a CPU ``fsdp`` run would quietly be DDP
    (and could not be tested without a GPU).
    """
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if trainer.args.fsdp_plugin_args is None or state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
    state.distributed_type = DistributedType.FSDP
    # every later AcceleratorState() copies the process state's type over its own: set both
    PartialState().distributed_type = DistributedType.FSDP
    trainer.is_fsdp_enabled = True


def save_full_model(trainer: Any, model_dir: Path) -> None:
    """Save an FSDP-trained model whole to ``model_dir``; every process must call this.

    transformers' ``save_model`` gathers the full state dict (a collective: all processes) and
    the main process writes it, with the config and tokenizer, into a staging folder, which is
    renamed into place only when whole (``checkpoints.write_atomically``).
    """
    import shutil

    from tuneloop import distributed
    from tuneloop.plugins.trainers import checkpoints

    staged = model_dir.with_name(f".{model_dir.name}.fsdp")
    if distributed.is_main_process():
        shutil.rmtree(staged, ignore_errors=True)
    distributed.barrier()
    trainer.save_model(str(staged))
    distributed.barrier()
    if distributed.is_main_process():
        (staged / "training_args.bin").unlink(missing_ok=True)  # pickled; nothing reads it
        checkpoints.write_atomically(model_dir, lambda folder: shutil.move(str(staged), folder))
