"""Running one cycle in several processes (``torchrun``, ``accelerate launch``): who is who.

Every process prepares the same data and trains its share of each batch (DDP through the
transformers Trainer); only the main process (rank 0) writes to the database, the review queue and
the model folder. The launcher says which process this is through the environment (``RANK``,
``WORLD_SIZE``), so these helpers answer without importing torch; torch is imported only when there
really are several processes.
"""

from __future__ import annotations

import os
from typing import Any


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return rank() == 0


def start() -> None:
    """Join the process group now (the Trainer would later), so ranks can agree before training.

    accelerate's ``PartialState`` is what ``TrainingArguments`` uses too, so the group it opens is
    the one training runs in: gloo on CPUs, NCCL on GPUs.
    """
    if not is_distributed():
        return
    import torch
    from accelerate import PartialState

    # accelerate treats several CPU processes as distributed only when told they are CPU ones
    PartialState(cpu=not torch.cuda.is_available())


def broadcast(value: Any) -> Any:
    """The main process's ``value``, on every process (``value`` must pickle)."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    start()
    box = [value if is_main_process() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def agree(decide: Any) -> Any:
    """Run ``decide()`` on the main process and hand its answer to every process.

    When it raises, the main process re-raises and the others raise a ``TuneloopError`` with the
    same message, so no process waits for an answer that will never come.
    """
    if not is_distributed():
        return decide()
    from tuneloop.errors import TuneloopError

    error: BaseException | None = None
    outcome: tuple[bool, Any] = (True, None)
    if is_main_process():
        try:
            outcome = (True, decide())
        except BaseException as raised:  # noqa: BLE001 - re-raised below, after telling the others
            error = raised
            outcome = (False, str(raised).strip().splitlines()[0] if str(raised).strip()
                       else type(raised).__name__)
    ok, value = broadcast(outcome)
    if error is not None:
        raise error
    if not ok:
        raise TuneloopError(f"the main process failed: {value}")
    return value
