"""Checkpoints that are whole or absent, and finding the one to resume from.

transformers writes a checkpoint's files one after another straight into ``checkpoint-N``; a run
killed half way leaves a folder that looks like a checkpoint and is not. Here every checkpoint is
written into ``.staging/checkpoint-N`` and renamed into place only when all its files (weights,
optimizer, scheduler, RNG states of every process, trainer state) are on disk; a rename within one
file system is atomic, so ``checkpoint-N`` is complete whenever it exists. The saved model folder
is written the same way.

Everything a checkpoint holds loads with ``torch.load(weights_only=True)`` (optimizer, scheduler,
RNG states: transformers loads them so), from safetensors (the weights) or from JSON (trainer
state, arguments: the pickled ``training_args.bin`` transformers writes is replaced by JSON), so
resuming never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from tuneloop import distributed

STAGING = ".staging"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete(checkpoint_dir: Path) -> Path | None:
    """The checkpoint with the highest step, or ``None``; staging folders never count."""
    if not checkpoint_dir.is_dir():
        return None
    found = [path for path in checkpoint_dir.iterdir()
             if path.is_dir() and CHECKPOINT.match(path.name)]
    return max(found, key=step_of) if found else None


def step_of(checkpoint: Path | str) -> int:
    match = CHECKPOINT.match(Path(checkpoint).name)
    if match is None:
        raise ValueError(f"{checkpoint} is not a checkpoint folder")
    return int(match.group(1))


def save_atomically(trainer: Any, save: Callable[[], None]) -> None:
    """Run transformers' checkpoint ``save`` into a staging folder, then rename it into place.

    ``save`` writes ``<output_dir>/checkpoint-N`` with ``output_dir`` pointed at the staging folder
    for the call. transformers records the best checkpoint's path while saving (and in the saved
    trainer state): a path into the staging folder is corrected to the final one before the rename.
    Every process writes its own RNG state, so all wait for each other before the main process
    renames, and again before anyone goes on.
    """
    from transformers.trainer_utils import rotate_checkpoints

    output_dir = Path(trainer.args.output_dir)
    staging = output_dir / STAGING
    name = f"checkpoint-{trainer.state.global_step}"
    if distributed.is_main_process():
        shutil.rmtree(staging / name, ignore_errors=True)  # left by a run killed while saving
        staging.mkdir(parents=True, exist_ok=True)
    distributed.barrier()

    trainer.args.output_dir = str(staging)
    try:
        save()
    finally:
        trainer.args.output_dir = str(output_dir)
    best = trainer.state.best_model_checkpoint
    if best is not None and Path(best).parent == staging:
        trainer.state.best_model_checkpoint = str(output_dir / Path(best).name)
    distributed.barrier()

    if distributed.is_main_process():
        if trainer.args.should_save:  # the trainer state names the final path, not the staging one
            trainer.state.save_to_json(str(staging / name / "trainer_state.json"))
        # transformers pickles its arguments next to the weights; keep them as JSON instead, so
        # nothing in a checkpoint needs unpickling (resuming never reads them)
        pickled = staging / name / "training_args.bin"
        if pickled.exists():
            pickled.unlink()
            (staging / name / "training_args.json").write_text(trainer.args.to_json_string())
        final = output_dir / name
        if final.exists():  # the same step saved again after a resume: the new one wins
            shutil.rmtree(final)
        os.replace(staging / name, final)
        _sync_folder(output_dir)
        rotate_checkpoints(output_dir=str(output_dir),
                           save_total_limit=trainer.args.save_total_limit,
                           best_model_checkpoint=trainer.state.best_model_checkpoint)
    distributed.barrier()


def write_atomically(folder: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary sibling of ``folder``, then rename it to ``folder``.

    An existing ``folder`` (a model saved before a resume) is replaced only once the new one is
    whole.
    """
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    write(partial)
    if folder.exists():
        retired = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(folder, retired)
        os.replace(partial, folder)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(partial, folder)
    _sync_folder(folder.parent)


def remove(checkpoint_dir: Path) -> None:
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power cut after it cannot undo it), where possible."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
