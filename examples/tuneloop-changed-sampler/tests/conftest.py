"""Test settings: offline, and only the plugins a test registers itself.

``TUNELOOP_LOAD_PLUGINS=""`` keeps other installed plugins out of these tests, so a broken or
clashing plugin next to this one cannot fail them.
"""

import os

os.environ["TUNELOOP_LOAD_PLUGINS"] = ""
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny test models are built locally
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
