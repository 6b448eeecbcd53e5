"""Load and clean a large JSON Lines file: tuneloop against pandas and Hugging Face datasets.

    .venv/bin/python benchmarks/data_load_clean.py [--rows 1000000]

Writes a synthetic intent dataset (short utterances, 20 labels, 2% exact duplicates, some padded
whitespace and empty texts) to a temporary folder, then runs the same cleaning with each tool, each
in its own process so that peak memory (max RSS, interpreter and imports included) is that
tool's alone:

- tuneloop, streamed: JSONL source -> unicode_normalize -> normalize_whitespace -> drop_empty ->
  drop_duplicates, counted as the examples come out (what ``tuneloop data inspect`` and a cycle do
  before the split);
- tuneloop, held: the same, keeping every cleaned example in a list (what the split needs);
- tuneloop, prepared: the cycle's whole ``prepare_data`` (plus the stratified split and the exact
  leakage check);
- pandas: ``read_json(lines=True)``, NFKC, whitespace, empty rows dropped, ``drop_duplicates``;
- datasets: ``load_dataset("json")`` (Arrow cache on disk), ``map`` and ``filter`` for the same.

Figures are printed side by side with ratios; the machine is shared, so compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLEANERS = ["unicode_normalize", "normalize_whitespace", "drop_empty", "drop_duplicates"]
VOCABULARY = ("account balance card transfer money please help my the to i need check freeze lost "
              "stolen payment bill due date when what is how much can you show me send savings "
              "credit debit limit increase pin change address phone email statement interest rate "
              "loan mortgage fee refund charge dispute fraud").split()


def write_rows(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    previous = ""
    with path.open("w", encoding="utf-8") as handle:
        for number in range(rows):
            if number % 50 == 7:  # 2% exact duplicates of the line before
                handle.write(previous)
                continue
            text = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(5, 16)))
            text += f" {number}"
            if number % 97 == 0:
                text = "  " + text.replace(" ", "   ", 2) + " "
            if number % 1009 == 0:
                text = "   "
            previous = json.dumps({"text": text, "label": f"intent_{number % 20}"}) + "\n"
            handle.write(previous)


# --------------------------------------------------------------------------------------------------
# Workloads, each run in a child process
# --------------------------------------------------------------------------------------------------


def tuneloop_config(path: str):
    from tuneloop.config import ProjectConfig

    return ProjectConfig.model_validate({
        "project": "benchmark", "task": "classification", "model": {"name": "unused"},
        "data": {"sources": [{"type": "jsonl", "path": path,
                              "fields": {"input": "text", "target": "label"}}],
                 "cleaners": CLEANERS, "leakage": {"action": "report", "near_threshold": None}}})


def run_tuneloop(path: str, mode: str) -> int:
    from tuneloop import registries
    from tuneloop.data_pipeline import DataPipeline

    config = tuneloop_config(path)
    if mode == "prepared":
        from tuneloop.cycle import prepare_data

        prepared = prepare_data(config, registries.build(), None)
        return sum(len(examples) for examples in prepared.splits.values())
    examples = DataPipeline(config, registries.build()).examples()
    if mode == "held":
        return len(list(examples))
    return sum(1 for _ in examples)


def run_pandas(path: str) -> int:
    import pandas as pd

    frame = pd.read_json(path, lines=True, dtype={"text": str, "label": str})
    frame["text"] = (frame["text"].str.normalize("NFKC")
                     .str.replace(r"\s+", " ", regex=True).str.strip())
    frame = frame[frame["text"] != ""]
    frame = frame.assign(key=frame["text"].str.lower()).drop_duplicates(subset=["key", "label"])
    return len(frame)


def run_datasets(path: str, cache: str) -> int:
    import re
    import unicodedata

    import datasets

    datasets.disable_progress_bars()
    dataset = datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache)
    spaces = re.compile(r"\s+")

    def clean(batch):
        return {"text": [spaces.sub(" ", unicodedata.normalize("NFKC", text)).strip()
                         for text in batch["text"]]}

    dataset = dataset.map(clean, batched=True, batch_size=10_000)
    seen: set = set()

    def first(batch):
        keep = []
        for text, label in zip(batch["text"], batch["label"]):
            key = (text.lower(), label)
            keep.append(bool(text) and key not in seen)
            seen.add(key)
        return keep

    dataset = dataset.filter(first, batched=True, batch_size=10_000)
    return len(dataset)


def child(tool: str, path: str, cache: str) -> None:
    started = time.perf_counter()
    if tool.startswith("tuneloop"):
        kept = run_tuneloop(path, tool.split("-", 1)[1])
    elif tool == "pandas":
        kept = run_pandas(path)
    else:
        kept = run_datasets(path, cache)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"tool": tool, "seconds": seconds, "kept": kept, "peak_mb": peak}))


# --------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------

TOOLS = ("tuneloop-stream", "tuneloop-held", "tuneloop-prepared", "pandas", "datasets")


def main(rows: int = 1_000_000) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        started = time.perf_counter()
        write_rows(path, rows)
        size_mb = path.stat().st_size / 2 ** 20
        print(f"\nLoad and clean {rows:,} JSONL rows ({size_mb:.0f} MB, written in "
              f"{time.perf_counter() - started:.0f} s); each tool in its own process")
        results = []
        env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
        for tool in TOOLS:
            output = subprocess.run([sys.executable, __file__, "--child", tool, str(path),
                                     str(Path(folder) / "cache")], capture_output=True,
                                    text=True, env=env)
            if output.returncode != 0:
                print(f"  {tool}: failed: {output.stderr.strip().splitlines()[-1:]}")
                continue
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    stream = next((r for r in results if r["tool"] == "tuneloop-stream"), None)
    print(f"{'tool':<20}{'rows/s':>10}{'seconds':>10}{'peak MB':>10}{'kept':>11}"
          f"{'time vs tuneloop-stream':>26}")
    for result in results:
        ratio = result["seconds"] / stream["seconds"] if stream else float("nan")
        print(f"{result['tool']:<20}{rows / result['seconds']:>10,.0f}{result['seconds']:>10.1f}"
              f"{result['peak_mb']:>10.0f}{result['kept']:>11,}{ratio:>25.2f}x")
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rows", type=int, default=1_000_000)
        main(parser.parse_args().rows)
