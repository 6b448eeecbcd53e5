"""Test-wide settings: no network, no installed third-party plugins unless a test asks."""

from __future__ import annotations

import os

# Set before anything imports transformers or huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["TUNELOOP_LOAD_PLUGINS"] = ""  # installed plugins load only where a test says so
os.environ.pop("TUNELOOP_DEBUG", None)
# Tiny models on 2 cores: one thread per process beats two threads contending (3 s vs 23 s seen).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_plugin_state():
    """Each test starts with the built-in plugins only, whatever the previous test registered."""
    from tuneloop import plugin_manager

    plugin_manager.reset_for_tests()
    yield
    plugin_manager.reset_for_tests()
