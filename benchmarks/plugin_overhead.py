"""What trusting plugins costs: start-up with installed plugins, and the interface checks.

Three measurements, each side by side with its baseline in the same run (on a shared machine the
ratio is the figure to trust; the absolute times depend on the load):

1. ``tuneloop --help`` (a fresh interpreter each time) with the three example plugins installed and
   loading, against ``tuneloop --no-plugins --help``: what installed plugins add to every command
   (reading entry points, the version checks, importing the plugins).
2. The checks on what components hand back, per item: ``example_problem`` on 100,000 examples and
   ``expect_predictions`` on 100,000 predictions, against building those records.
3. The penalty check at every training step: ``regularizer_penalty`` (call, blame, check the
   tensor) against calling ``penalty`` directly, on a penalty that returns a fixed tensor (so only
   the check is timed), and the check's cost against one forward and backward pass of a small
   BERT-sized encoder (4 layers of 256) on a batch of 16 x 32 tokens.

Run: ``python benchmarks/plugin_overhead.py`` (about a minute).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"text-folder": "tuneloop_text_folder", "keyword-coverage": "tuneloop_keyword_coverage",
            "changed-sampler": "tuneloop_changed_sampler"}
STARTS = 15
ITEMS = 100_000


def install_examples(site: Path) -> None:
    """Copy the example packages into ``site`` with the metadata pip would write (no build)."""
    for entry_point, module in EXAMPLES.items():
        folder = "tuneloop-" + entry_point
        shutil.copytree(ROOT / "examples" / folder / module, site / module)
        dist_info = site / f"{module}-0.1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {folder}\n"
                                            f"Version: 0.1.0\nRequires-Dist: tuneloop<1,>=0.1\n")
        (dist_info / "entry_points.txt").write_text(f"[tuneloop]\n{entry_point} = {module}\n")


def start_up(site: Path, *arguments: str) -> float:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TUNELOOP_LOAD_PLUGINS", "TUNELOOP_NO_PLUGINS")}
    environment["PYTHONPATH"] = str(site)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tuneloop.cli", *arguments, "--help"], check=True,
                   capture_output=True, env=environment)
    return time.perf_counter() - started


def median_time(function: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def row(label: str, measured: float, baseline: float, unit: str, scale: float) -> None:
    print(f"{label:<52} {measured * scale:>10.2f} {baseline * scale:>10.2f} {unit:<5} "
          f"{measured / baseline:>6.2f}x")


def main() -> None:
    print(f"{'measurement':<52} {'measured':>10} {'baseline':>10} {'unit':<5} {'ratio':>7}")

    # 1. start-up: alternate the two, so load changes hit both alike
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder)
        install_examples(site)
        start_up(site)  # warm the file system cache
        with_plugins, without = [], []
        for _ in range(STARTS):
            with_plugins.append(start_up(site))
            without.append(start_up(site, "--no-plugins"))
    row("tuneloop --help, 3 plugins vs --no-plugins", statistics.median(with_plugins),
        statistics.median(without), "ms", 1e3)

    # 2. records: check vs build, per item
    from tuneloop import Example, Prediction, registries
    from tuneloop.interface_checks import example_problem, expect_predictions

    examples = [Example(f"question number {n} about my invoice", "billing") for n in range(ITEMS)]
    build_examples = median_time(lambda: [Example(f"question number {n} about my invoice",
                                                  "billing") for n in range(ITEMS)])
    check_examples = median_time(lambda: [example_problem(example) for example in examples])
    row("example_problem vs Example(...), per example", check_examples / ITEMS,
        build_examples / ITEMS, "us", 1e6)

    found = registries.build()
    trainer = found.trainers.names()[0]
    predictions = [Prediction(example.id, "billing", confidence=0.5) for example in examples]
    build_predictions = median_time(lambda: [Prediction(example.id, "billing", confidence=0.5)
                                             for example in examples])
    check_predictions = median_time(lambda: expect_predictions(found, trainer, predictions,
                                                               examples))
    row("expect_predictions vs Prediction(...), per item", check_predictions / ITEMS,
        build_predictions / ITEMS, "us", 1e6)

    # 3. the penalty check at every step: the wrapper around a penalty that costs nothing, so
    #    what is timed is the call, the blame and the tensor checks
    import torch
    from transformers import BertConfig, BertModel

    import tuneloop
    from tuneloop.interface_checks import regularizer_penalty

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=2000, hidden_size=256, num_hidden_layers=4,
                                 num_attention_heads=4, intermediate_size=1024))
    fixed = torch.tensor(0.5)

    class Fixed(tuneloop.Regularizer):
        name = "fixed_penalty"

        def penalty(self, model):
            return fixed

    regularizer = Fixed()
    calls = 10_000
    direct = median_time(lambda: [regularizer.penalty(model) for _ in range(calls)]) / calls
    checked = median_time(lambda: [regularizer_penalty(regularizer, model)
                                   for _ in range(calls)]) / calls
    row("regularizer_penalty vs penalty(), per call", checked, direct, "us", 1e6)
    tokens = torch.randint(0, 2000, (16, 32))

    def step() -> None:
        model.zero_grad()
        model(input_ids=tokens).last_hidden_state.sum().backward()

    forward_backward = median_time(lambda: [step() for _ in range(3)], 3) / 3
    row("check per step vs forward+backward (16x32 tokens)", checked - direct,
        forward_backward, "ms", 1e3)


if __name__ == "__main__":
    main()
