"""A test plugin that kills its own process (SIGKILL: no cleanup, no except, no finally) when
training reaches the step in ``TUNELOOP_TEST_KILL_AT_STEP``, as a power cut would."""

from __future__ import annotations

import os
import signal

from tuneloop import Regularizer, hookimpl

ENVIRONMENT = "TUNELOOP_TEST_KILL_AT_STEP"


class KillSwitch(Regularizer):
    """Does nothing unless the environment names a step; then kills the process at that step."""

    name = "kill_switch"

    def callbacks(self):
        from transformers import TrainerCallback

        at = int(os.environ.get(ENVIRONMENT, "0"))

        class Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if at and state.global_step == at:
                    os.kill(os.getpid(), signal.SIGKILL)

        return [Kill()]


@hookimpl
def register_regularizers(register):
    register(KillSwitch)


if __name__ == "__main__":  # python kill_switch.py CONFIG: run a cycle with this plugin loaded
    import sys

    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle
    from tuneloop.testing import register_plugin

    with register_plugin(sys.modules[__name__], name="kill_switch"):
        run_cycle(load_config(sys.argv[1]), quiet=True)
