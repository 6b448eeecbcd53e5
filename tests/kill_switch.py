"""A test plugin that kills its own process (SIGKILL: no cleanup, no except, no finally) at a
chosen point of a cycle, as a power cut would:

- ``TUNELOOP_TEST_KILL_AT_STEP=N``: when training reaches step N (status ``running``);
- ``TUNELOOP_TEST_KILL_AT_STAGE=<stage>``: at a point of the stages after it, one of ``STAGES``
  (each with the status the cycle is left in). The points inside a store write (``recording``,
  ``promotion``) strike with the transaction open, so they also show that the write is atomic.

Run as a script (``python kill_switch.py CONFIG [--resume]``) it is ``tuneloop run CONFIG`` with
this plugin loaded; the stage points are armed only there.
"""

from __future__ import annotations

import functools
import os
import signal

from tuneloop import Regularizer, hookimpl

ENVIRONMENT = "TUNELOOP_TEST_KILL_AT_STEP"
STAGE_ENVIRONMENT = "TUNELOOP_TEST_KILL_AT_STAGE"
# stage -> (where the kill strikes, the status the killed cycle is left in)
STAGES = {
    "recording": ("inside the transaction that records the cycle's examples", "running"),
    "training": ("at a training step (TUNELOOP_TEST_KILL_AT_STEP)", "running"),
    "trained": ("in the training_finished hook: the model saved, nothing evaluated", "trained"),
    "evaluation": ("as the test figures are stored: validation figures and predictions stored",
                   "trained"),
    "evaluated": ("in the evaluation_finished hook: figures stored, no outputs", "evaluated"),
    "outputs": ("as the review outputs are stored: predicted, nothing written", "evaluated"),
    "queueing": ("as the review queue is filled: outputs stored, nothing queued", "evaluated"),
    "pairing": ("as the pairwise items are queued: single items queued", "evaluated"),
    "promotion": ("inside the transaction that records the model and 'done'", "evaluated"),
}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def stage() -> str:
    return os.environ.get(STAGE_ENVIRONMENT, "")


class KillSwitch(Regularizer):
    """Does nothing unless the environment names a step; then kills the process at that step."""

    name = "kill_switch"

    def callbacks(self):
        from transformers import TrainerCallback

        at = int(os.environ.get(ENVIRONMENT, "0"))

        class Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if at and state.global_step == at:
                    die()

        return [Kill()]


@hookimpl
def register_regularizers(register):
    register(KillSwitch)


@hookimpl
def training_finished(cycle, result):
    if stage() == "trained":
        die()


@hookimpl
def evaluation_finished(cycle, metrics):
    if stage() == "evaluated":
        die()


def arm_store() -> None:
    """Kill at the stage named in the environment from inside the store's writes (this process
    only: it patches ``Store``)."""
    from tuneloop.store import Store

    def before(method, when):
        original = getattr(Store, method)

        @functools.wraps(original)
        def wrapped(self, *args, **kwargs):
            if when(*args, **kwargs):
                die()
            return original(self, *args, **kwargs)

        setattr(Store, method, wrapped)

    def after(method):
        original = getattr(Store, method)

        @functools.wraps(original)
        def wrapped(self, *args, **kwargs):
            with self.write():  # joins the caller's transaction, if any: killed inside it
                value = original(self, *args, **kwargs)
                die()
            return value

        setattr(Store, method, wrapped)

    chosen = stage()
    if chosen == "recording":
        after("add_examples")
    elif chosen == "evaluation":
        before("add_metrics", lambda cycle_id, split, values, step=None: split == "test"
               and step is None)
    elif chosen == "outputs":
        before("add_outputs", lambda *args, **kwargs: True)
    elif chosen == "queueing":
        before("enqueue", lambda *args, **kwargs: True)
    elif chosen == "pairing":
        before("enqueue", lambda *args, **kwargs: kwargs.get("pair_output_ids") is not None)
    elif chosen == "promotion":
        after("add_model")
    elif chosen not in ("", "training", "trained", "evaluated"):
        raise SystemExit(f"{STAGE_ENVIRONMENT}: unknown stage {chosen!r}; one of "
                         f"{', '.join(STAGES)}")


if __name__ == "__main__":  # python kill_switch.py CONFIG [--resume]: tuneloop run, plugin loaded
    import sys

    from tuneloop.cli import cli
    from tuneloop.testing import register_plugin

    arm_store()
    with register_plugin(sys.modules[__name__], name="kill_switch"):
        cli.main(["run", *sys.argv[1:], "--quiet"], prog_name="tuneloop")
