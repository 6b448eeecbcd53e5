"""The causal-LM trainers' memory and speed options on a ~110M-parameter GPT-2, side by side.

    nice -n 10 .venv/bin/python benchmarks/llm_memory_packing.py [--quick] [--part memory|packing]

The model is GPT-2's base shape (12 layers, 768 wide, 12 heads, 1024 positions) with a 32k
vocabulary and random weights: 110M parameters. Its word-level tokenizer is trained on the
benchmark's own text. Two comparisons, each through the trainer's own code (the recipe's
``load``, ``encode``, ``pack``, ``collator``, ``losses`` and ``adjust_model``) with a plain
AdamW step, so no checkpoint writing is timed:

1. Peak memory of one training step (forward, backward, AdamW step) on one 1024-token example,
   without and with ``gradient_checkpointing: true``. Each arm runs in a fresh subprocess and
   reports its peak resident set size (``ru_maxrss``: the process's peak RSS, CPU memory; no GPU
   here); the figure is the whole process's peak, weights, gradients and AdamW state included,
   and beside it the peak above the RSS measured once the model was loaded. Target: at most 0.6x.
2. Real (not padding) tokens per second of one epoch over instruction data of varied lengths
   (prompts of 5 to 200 words, answers of 2 to 60, log-normal), once in length-grouped padded
   batches (``group_by_length``, the default) and once packed (``packing: true``), both with
   ``batch_size`` 8 and ``max_length`` 256, so the largest possible batch, and the memory it
   needs, is the same; a packed batch is always nearly full. Before training, each arm measures
   the loss of the untouched model on all the examples, in its own batches: packing must leave it
   unchanged. The arms run padded, packed, packed, padded (fresh processes), and the figure is
   the geometric mean of the two pairs' ratios, so a load that drifts weighs on both. Target: at
   least 1.3x.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUNELOOP_LOAD_PLUGINS", "")

WORDS = [f"w{number}" for number in range(3000)]
BATCH_SIZE = 8
MAX_LENGTH = 256
MEMORY_LENGTH = 1024


def instruction_examples(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Prompt/answer pairs whose lengths vary as instruction data's do (log-normal)."""
    rng = random.Random(seed)

    def text(low: int, high: int, median: float) -> str:
        length = int(min(high, max(low, rng.lognormvariate(math.log(median), 0.8))))
        return " ".join(rng.choice(WORDS) for _ in range(length))

    return [(text(5, 200, 25), text(2, 60, 12)) for _ in range(count)]


def build_model(folder: Path) -> str:
    """GPT-2 base shape, 32k vocabulary, random weights, and a word-level tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tuneloop.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer([" ".join(WORDS)], style="gpt2")
    config = GPT2Config(vocab_size=32000, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def recipe_for(model_dir: str, max_length: int, **options) -> object:
    from tuneloop.plugins.trainers.causal_lm import CausalLMOptions, CausalLMRecipe
    from tuneloop.testing import cycle_context

    context = cycle_context(tempfile.gettempdir(), task="causal-lm", start_model=model_dir,
                            max_length=max_length)
    return CausalLMRecipe(context, CausalLMOptions(**options))


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_arm(model_dir: str, checkpointing: bool, length: int) -> dict[str, float]:
    """One training step on one ``length``-token example; run in a fresh process."""
    import torch

    from tuneloop import Example
    from tuneloop.plugins.trainers.common import weighted_mean

    recipe = recipe_for(model_dir, length, gradient_checkpointing=checkpointing)
    model, tokenizer = recipe.load(model_dir)
    model = recipe.adjust_model(model)
    model.train()
    words = " ".join(random.Random(1).choice(WORDS) for _ in range(length))
    example = Example(" ".join(words.split()[:length // 2]), " ".join(words.split()[length // 2:]))
    feature = recipe.encode(example, tokenizer)
    assert len(feature["input_ids"]) == length, len(feature["input_ids"])
    batch = recipe.collator(tokenizer)([feature])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loaded = resident_mib()
    loaded_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(0)  # the same dropout in both arms: the same loss
    started = time.perf_counter()
    losses, mask, _ = recipe.losses(model, dict(batch), 0.0)
    loss = weighted_mean(losses, mask)
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mib": peak, "loaded_mib": loaded, "loading_peak_mib": loaded_peak,
            "seconds": seconds, "loss": float(loss)}


def throughput_arm(model_dir: str, examples: list[tuple[str, str]],
                   packed: bool) -> dict[str, float]:
    """Loss of the untouched model on every example, then one epoch: real tokens per second."""
    import torch

    from tuneloop import Example
    from tuneloop.plugins.trainers import batching
    from tuneloop.plugins.trainers.common import weighted_mean

    recipe = recipe_for(model_dir, MAX_LENGTH, packing=packed)
    model, tokenizer = recipe.load(model_dir)
    model = recipe.adjust_model(model)
    features = [dict(recipe.encode(Example(prompt, answer), tokenizer), weight=1.0,
                     example_index=number)
                for number, (prompt, answer) in enumerate(examples)]
    rows = recipe.pack(features)
    order = batching.length_grouped_indices([batching.feature_length(row) for row in rows],
                                            BATCH_SIZE, random.Random(0))
    batches = [[rows[index] for index in order[start:start + BATCH_SIZE]]
               for start in range(0, len(order), BATCH_SIZE)]
    collate = recipe.collator(tokenizer)
    plain = [collate([{key: value for key, value in row.items()
                       if key not in ("weight", "example_index")} for row in batch])
             for batch in batches]

    def loss_of(batch):
        losses, mask, _ = recipe.losses(model, dict(batch), 0.0)
        return weighted_mean(losses, mask), int(mask.sum())

    model.eval()
    total, counted = 0.0, 0
    with torch.no_grad():
        for batch in plain:
            loss, tokens = loss_of(batch)
            total += float(loss) * tokens
            counted += tokens
    initial_loss = total / counted

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    real = padded = 0
    trained, trained_tokens = 0.0, 0
    started = time.perf_counter()
    for batch in plain:
        optimizer.zero_grad()
        loss, tokens = loss_of(batch)
        loss.backward()
        optimizer.step()
        trained += float(loss) * tokens
        trained_tokens += tokens
        real_tokens = int(batch.get("packed_attention_mask", batch.get("attention_mask")).sum())
        real += real_tokens
        padded += batch["input_ids"].numel() - real_tokens
    seconds = time.perf_counter() - started
    return {"tokens_per_second": real / seconds, "seconds": seconds, "steps": len(plain),
            "rows": len(rows), "padding": padded / (real + padded),
            "initial_loss": initial_loss, "epoch_loss": trained / trained_tokens,
            "real_tokens": real}


def run_arm(kind: str, model_dir: str, **settings) -> dict[str, float]:
    """An arm in a fresh process, so its peak memory is its own."""
    command = [sys.executable, __file__, "--arm", json.dumps({"kind": kind, "model": model_dir,
                                                               **settings})]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} arm failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(quick: bool = False, part: str | None = None) -> dict[str, float]:
    """Both comparisons (``part``: only ``memory`` or only ``packing``)."""
    import torch

    length = 256 if quick else MEMORY_LENGTH
    examples = instruction_examples(12 if quick else 40)
    with tempfile.TemporaryDirectory(prefix="tuneloop-llm-bench-") as folder:
        model_dir = build_model(Path(folder))
        parameters = sum(tensor.numel() for tensor in
                         __import__("safetensors.torch", fromlist=["load_file"])
                         .load_file(str(Path(model_dir) / "model.safetensors")).values())
        memory = {checkpointing: run_arm("memory", model_dir, checkpointing=checkpointing,
                                         length=length)
                  for checkpointing in (False, True)} if part in (None, "memory") else {}
        # padded, packed, packed, padded (ABBA): a load that drifts during the run weighs on
        # both alike; each arm is a fresh process
        speed = [(packed, run_arm("throughput", model_dir, packed=packed, examples=examples))
                 for packed in (False, True, True, False)] if part in (None, "packing") else []

    print(f"GPT-2 base shape, random weights, {parameters / 1e6:.0f}M parameters "
          f"(tied output layer counted once)")
    figures_found: dict[str, float] = {}
    if memory:
        figures_found["memory_ratio"] = print_memory(memory, length)
    if speed:
        figures_found["packing_speedup"] = print_speed(speed, len(examples))
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, load average "
          f"{load:.2f} (1 min) at the end")
    return figures_found


def print_memory(memory: dict, length: int) -> float:
    print(f"\n1. One training step on one {length}-token example (peak RSS of a fresh process)")
    print(f"{'gradient_checkpointing':<24}{'peak RSS MiB':>14}{'above loaded MiB':>18}"
          f"{'step s':>9}{'loss':>9}")
    for checkpointing, figures in memory.items():
        print(f"{str(checkpointing).lower():<24}{figures['peak_mib']:>14.0f}"
              f"{figures['peak_mib'] - figures['loaded_mib']:>18.0f}"
              f"{figures['seconds']:>9.1f}{figures['loss']:>9.4f}")
    ratio = memory[True]["peak_mib"] / memory[False]["peak_mib"]
    above = ((memory[True]["peak_mib"] - memory[True]["loaded_mib"])
             / (memory[False]["peak_mib"] - memory[False]["loaded_mib"]))
    print(f"peak memory with / without checkpointing: {ratio:.2f}x (above loaded: {above:.2f}x)"
          f"   target <= 0.6x")
    return ratio


def print_speed(speed: list, examples: int) -> float:
    print(f"\n2. One epoch over {examples} instruction examples, batch_size {BATCH_SIZE}, "
          f"max_length {MAX_LENGTH}")
    print(f"{'batches':<16}{'rows':>6}{'steps':>7}{'padding':>9}{'real tok/s':>12}"
          f"{'loss before':>13}{'epoch loss':>12}")
    for packed, figures in speed:
        name = "packed" if packed else "length-grouped"
        print(f"{name:<16}{figures['rows']:>6}{figures['steps']:>7}{figures['padding']:>9.1%}"
              f"{figures['tokens_per_second']:>12.1f}{figures['initial_loss']:>13.5f}"
              f"{figures['epoch_loss']:>12.5f}")
    rates = [(figures["tokens_per_second"], packed) for packed, figures in speed]
    pairs = [rates[1][0] / rates[0][0], rates[2][0] / rates[3][0]]
    speedup = math.sqrt(pairs[0] * pairs[1])
    losses = {packed: figures["initial_loss"] for packed, figures in speed}
    print(f"tokens/s packed / length-grouped: {speedup:.2f}x (geometric mean of the pairs "
          f"{pairs[0]:.2f}x, {pairs[1]:.2f}x)   target >= 1.3x; loss of the same examples "
          f"before training, packed - padded: {losses[True] - losses[False]:+.2e}")
    return speedup


def arm_main(settings: dict) -> None:
    if settings["kind"] == "memory":
        figures = memory_arm(settings["model"], settings["checkpointing"], settings["length"])
    else:
        figures = throughput_arm(settings["model"], [tuple(pair) for pair in settings["examples"]],
                                 settings["packed"])
    print(json.dumps(figures))


if __name__ == "__main__":
    if "--arm" in sys.argv:
        arm_main(json.loads(sys.argv[sys.argv.index("--arm") + 1]))
    else:
        main(quick="--quick" in sys.argv,
             part=sys.argv[sys.argv.index("--part") + 1] if "--part" in sys.argv else None)
