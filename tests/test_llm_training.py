"""The causal-LM trainers' memory and scale options: packing, gradient checkpointing, k-bit
loading (QLoRA) and FSDP. Tiny random GPT-2 and Llama models, on the CPU (the k-bit test needs a
CUDA GPU and is skipped without one)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from tuneloop import Example, Regularizer
from tuneloop.testing import cycle_context, tiny_gpt2

torch = pytest.importorskip("torch")

from tuneloop.plugins.trainers import causal_lm, packing  # noqa: E402

ANIMALS = ["cat", "dog", "cow", "owl", "fox", "bee"]
COLOURS = ["red", "blue", "green"]


def varied_examples(count: int, seed: int = 0) -> list[Example]:
    """Prompt/completion pairs of very different lengths, as instruction data has."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        words = [rng.choice(ANIMALS) for _ in range(rng.choice([1, 2, 3, 8, 20]))]
        answer = [rng.choice(COLOURS) for _ in range(rng.choice([1, 2, 6]))]
        examples.append(Example("say " + " ".join(words), " ".join(answer)))
    return examples


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    texts = [f"say {a} {c}" for a in ANIMALS for c in COLOURS]
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), texts)


def tiny_llama() -> torch.nn.Module:
    """A random two-layer Llama (RoPE, grouped-query attention): the llama-like case."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return LlamaForCausalLM(config).eval()


def random_features(count: int, vocabulary: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    features = []
    for number in range(count):
        length = rng.randrange(3, 30)
        ids = [rng.randrange(1, vocabulary) for _ in range(length)]
        prompt = rng.randrange(1, length)
        features.append({"input_ids": ids, "attention_mask": [1] * length,
                         "labels": [-100] * prompt + ids[prompt:],
                         "weight": 1.0 + number % 3, "example_index": number})
    return features


# -- best-fit decreasing ------------------------------------------------------------------------


def test_best_fit_decreasing_puts_each_item_in_the_tightest_bin():
    # 5 opens a bin (1 free), 4 another (2 free), 3 a third (3 free); 2 fits the second exactly
    # and 1 the first exactly
    assert packing.best_fit_decreasing([5, 3, 2, 4, 1], 6) == [[0, 4], [3, 2], [1]]


def test_bins_hold_every_item_once_within_the_capacity():
    rng = random.Random(1)
    lengths = [rng.randrange(1, 65) for _ in range(500)]
    bins = packing.best_fit_decreasing(lengths, 64)
    assert sorted(index for members in bins for index in members) == list(range(500))
    assert all(sum(lengths[index] for index in members) <= 64 for members in bins)
    assert len(bins) <= 1.1 * sum(lengths) / 64 + 1  # nearly full bins
    assert bins == packing.best_fit_decreasing(lengths, 64)  # deterministic: resumes re-pack
    with pytest.raises(ValueError, match="does not fit"):
        packing.best_fit_decreasing([65], 64)


# -- attention stays inside each example --------------------------------------------------------


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_a_packed_example_has_the_logits_it_has_alone(architecture, attention, gpt2):
    from transformers import AutoModelForCausalLM

    if architecture == "gpt2":
        model = AutoModelForCausalLM.from_pretrained(gpt2, attn_implementation=attention).eval()
    else:
        model = tiny_llama()
        model.set_attn_implementation(attention)
    features = random_features(12, model.config.vocab_size)
    rows = packing.pack_features(features, capacity=64)
    assert len(rows) < len(features)  # several examples share a row
    batch = packing.PackedCollator(pad_token_id=0)(rows)
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       use_cache=False).logits
        compared = 0
        for row_number, row in enumerate(rows):
            start = 0
            for length in row["seq_lengths"]:
                ids = row["input_ids"][start:start + length]
                alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
                torch.testing.assert_close(packed[row_number, start:start + length], alone,
                                           atol=1e-5, rtol=1e-4)
                start += length
                compared += 1
    assert compared == len(features)


def test_packing_leaves_the_loss_of_the_same_examples_unchanged(gpt2, tmp_path):
    from tuneloop.plugins.trainers.common import weighted_mean

    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2, max_length=64)
    plain = causal_lm.CausalLMRecipe(context, causal_lm.CausalLMOptions())
    packed = causal_lm.CausalLMRecipe(context, causal_lm.CausalLMOptions(packing=True))
    model, tokenizer = plain.load(gpt2)
    model.eval()
    features = [dict(plain.encode(example, tokenizer), weight=1.0 + number % 3,
                     example_index=number)
                for number, example in enumerate(varied_examples(24))]
    carried = ("weight", "example_index")

    def loss(recipe, rows):
        batch = recipe.collator(tokenizer)([{key: value for key, value in row.items()
                                             if key not in carried} for row in rows])
        weights = torch.tensor([row["weight"] for row in rows])
        with torch.no_grad():
            losses, mask, _ = recipe.losses(model, dict(batch), 0.0)
        return weighted_mean(losses, mask, weights).item(), int(mask.sum())

    rows = packed.pack(features)
    assert len(rows) < len(features)
    packed_loss, packed_tokens = loss(packed, rows)
    plain_loss, plain_tokens = loss(plain, features)
    assert packed_tokens == plain_tokens
    assert packed_loss == pytest.approx(plain_loss, rel=1e-5)


def test_a_packed_cycle_trains_on_fewer_rows_and_resumes_exactly(gpt2, tmp_path):
    from transformers import TrainerCallback

    train, validation = varied_examples(48, seed=1), varied_examples(6, seed=2)
    training = {"epochs": 3, "learning_rate": 3e-3, "batch_size": 2, "eval_every": 3}
    options = causal_lm.CausalLMOptions(packing=True)

    class CrashAtStep4(Regularizer):
        name = "crash"

        def callbacks(self):
            class Crash(TrainerCallback):
                def on_step_end(self, args, state, control, **kwargs):
                    if state.global_step == 4:
                        raise RuntimeError("power cut")

            return [Crash()]

    def run(folder, regularizers=()):
        context = cycle_context(tmp_path / folder, task="causal-lm", start_model=gpt2,
                                training=training, max_length=64)
        return causal_lm.CausalLMTrainer(options).train(
            context, {"train": train, "validation": validation}, list(regularizers))

    whole = run("whole")
    assert whole.extra["train_examples"] == 48
    assert whole.extra["train_rows"] < 24  # several examples per row
    assert whole.global_step == 3 * -(-whole.extra["train_rows"] // 2)
    assert whole.extra["padding_fraction"] < 0.3
    losses = [entry["eval_loss"] for entry in whole.history if "eval_loss" in entry]
    assert losses[-1] < losses[0]

    with pytest.raises(RuntimeError, match="power cut"):
        run("killed", [CrashAtStep4()])
    resumed = run("killed")
    assert resumed.extra["resumed_from_step"] == 3
    assert resumed.best_metric == pytest.approx(whole.best_metric, rel=1e-5)
    assert [round(entry["eval_loss"], 5) for entry in resumed.history if "eval_loss" in entry] \
        == [round(loss, 5) for loss in losses]


def test_preference_trainers_refuse_packing():
    from pydantic import ValidationError

    from tuneloop.plugins.trainers.preference import DPOOptions

    with pytest.raises(ValidationError, match="packing is for causal_lm_sft"):
        DPOOptions(packing=True)


# -- gradient checkpointing ---------------------------------------------------------------------


def test_gradient_checkpointing_gives_the_same_gradients_with_lora(gpt2, tmp_path):
    from tuneloop.plugins.trainers import adjustments
    from tuneloop.config import LoraConfig

    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2)

    def gradients(checkpointing: bool) -> dict:
        recipe = causal_lm.CausalLMRecipe(
            context, causal_lm.CausalLMOptions(gradient_checkpointing=checkpointing))
        model, tokenizer = recipe.load(gpt2)
        model = recipe.adjust_model(model)
        torch.manual_seed(0)
        model = adjustments.add_lora(model, LoraConfig(r=4, target_modules=["c_attn"]),
                                     "causal-lm")
        model.train()
        layers = model.base_model.model.transformer.h
        assert all(layer.gradient_checkpointing == checkpointing for layer in layers)
        features = [recipe.encode(example, tokenizer) for example in varied_examples(4)]
        batch = recipe.collator(tokenizer)(features)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            losses, mask, _ = recipe.losses(model, dict(batch), 0.0)
            ((losses * mask).sum() / mask.sum()).backward()
        return {name: parameter.grad.clone() for name, parameter in model.named_parameters()
                if parameter.requires_grad}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain and plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-4)


def test_a_cycle_trains_with_gradient_checkpointing_and_lora(gpt2, tmp_path):
    train = [Example(f"say {a} {c}", f"{a} {c}") for a in ANIMALS for c in COLOURS]
    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2,
                            training={"epochs": 3, "learning_rate": 3e-3, "batch_size": 6,
                                      "eval_every": 3,
                                      "lora": {"r": 4, "target_modules": ["c_attn"]}})
    trainer = causal_lm.CausalLMTrainer(causal_lm.CausalLMOptions(gradient_checkpointing=True))
    result = trainer.train(context, {"train": train, "validation": train[:4]}, [])
    losses = [entry["eval_loss"] for entry in result.history if "eval_loss" in entry]
    assert len(losses) == 3 and losses[-1] < losses[0]


# -- k-bit loading (QLoRA) ----------------------------------------------------------------------


def qlora_config(directory, model: str, bits: int = 4) -> str:
    import json

    (directory / "data.jsonl").write_text("".join(
        json.dumps({"input": f"say {a} {c}", "target": f"{a} {c}"}) + "\n"
        for a in ANIMALS for c in COLOURS))
    path = directory / "tuneloop.yaml"
    path.write_text(f"""project: qlora
task: causal-lm
model:
  name: {model}
  max_length: 32
  quantization: {{bits: {bits}}}
data:
  sources: [{{type: jsonl, path: data.jsonl}}]
training:
  epochs: 2
  learning_rate: 3.0e-3
  batch_size: 6
  lora: {{r: 4, target_modules: [c_attn]}}
""")
    return str(path)


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="checks the refusal on a machine without CUDA")
def test_validate_refuses_quantization_without_cuda_in_one_line(gpt2, tmp_path):
    path = qlora_config(tmp_path, gpt2)
    run = subprocess.run([sys.executable, "-m", "tuneloop.cli", "validate", path],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "model.quantization" in lines[0] and "needs a CUDA GPU" in lines[0]
    assert "line 6" in lines[0]


def test_quantization_needs_lora_and_a_causal_lm(gpt2, tmp_path):
    from tuneloop.config import load_config
    from tuneloop.errors import ConfigError

    path = qlora_config(tmp_path, gpt2)
    text = open(path).read().replace("  lora: {r: 4, target_modules: [c_attn]}\n", "")
    open(path, "w").write(text)
    with pytest.raises(ConfigError, match="do not train: add training.lora"):
        load_config(path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bitsandbytes needs a CUDA GPU")
@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_trains_adapters_on_a_quantized_model(gpt2, tmp_path, bits):
    pytest.importorskip("bitsandbytes")
    from tuneloop.config import load_config
    from tuneloop.context import CycleContext, Progress
    from tuneloop.plugins.trainers import quantization

    config = load_config(qlora_config(tmp_path, gpt2, bits))  # validate passes here
    context = CycleContext(cycle_id=1, config=config, store=None, run_dir=tmp_path / "run",
                           start_model=gpt2, seed=1, labels=None, metrics=[],
                           progress=Progress(quiet=True))
    recipe = causal_lm.CausalLMRecipe(context, causal_lm.CausalLMOptions())
    model, _ = recipe.load(gpt2)
    assert quantization.is_quantized(model)
    train = [Example(f"say {a} {c}", f"{a} {c}") for a in ANIMALS for c in COLOURS]
    trainer = causal_lm.CausalLMTrainer(causal_lm.CausalLMOptions(gradient_checkpointing=True))
    result = trainer.train(context, {"train": train, "validation": train[:4]}, [])
    losses = [entry["eval_loss"] for entry in result.history if "eval_loss" in entry]
    assert losses[-1] < losses[0]
    # the saved model is a plain one: adapters merged into the unquantized base
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert not quantization.is_quantized(saved)


# -- FSDP: two processes on the CPU (gloo) ------------------------------------------------------


def fsdp_project(directory, model: str) -> str:
    from pathlib import Path

    from projects import write_config, write_jsonl

    texts = [f"say {a} {c} {n}" for n in range(8) for a in ANIMALS for c in COLOURS]
    write_jsonl(Path(directory) / "data.jsonl",
                [{"prompt": text, "completion": " ".join(text.split()[1:3])} for text in texts])
    return str(write_config(Path(directory), {
        "project": "fsdp", "task": "causal-lm", "model": {"name": model, "max_length": 16},
        "data": {"sources": [{"type": "jsonl", "path": "data.jsonl",
                              "fields": {"input": "prompt", "target": "completion"}}],
                 "split": {"train": 0.7, "validation": 0.1, "test": 0.1, "review": 0.1,
                           "seed": 3}},
        "training": {"trainer": {"name": "causal_lm_sft", "fsdp": {}}, "epochs": 2,
                     "learning_rate": 3e-3, "batch_size": 8, "eval_every": 4, "seed": 1,
                     "tensorboard": False, "regularizers": ["kill_switch"]},
        "evaluation": {"metrics": ["exact_match"]},
        "review": {"size": 5}}))


@pytest.mark.slow
def test_two_fsdp_processes_train_checkpoint_resume_and_record_the_cycle_once(tmp_path):
    import json
    import os
    from pathlib import Path

    import kill_switch
    from tuneloop.store import Store

    texts = [f"say {a} {c} {n}" for n in range(8) for a in ANIMALS for c in COLOURS]
    base = tiny_gpt2(tmp_path / "gpt2", texts)
    path = fsdp_project(tmp_path, base)
    tests = Path(__file__).parent
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TUNELOOP_LOAD_PLUGINS": "",
                   "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)

    def torchrun(*arguments, kill_at=0):
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
             "2", str(tests / "kill_switch.py"), path, *arguments],
            env={**environment, kill_switch.ENVIRONMENT: str(kill_at)}, capture_output=True,
            text=True, timeout=600, cwd=tmp_path)

    killed = torchrun(kill_at=6)  # after the checkpoint of step 4
    assert killed.returncode != 0, killed.stderr[-3000:]
    assert (tmp_path / "runs" / "cycle-1" / "checkpoints" / "checkpoint-4").is_dir()
    with Store(tmp_path / "tuneloop.db") as store:
        assert store.cycle(1)["status"] == "running"

    resumed = torchrun("--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("Cycle 1: done") == 1
    with Store(tmp_path / "tuneloop.db") as store:
        cycles = store.cycles()
        assert [(cycle["id"], cycle["status"]) for cycle in cycles] == [(1, "done")]
        training = json.loads(cycles[0]["stats"])["training"]
        final = store.query("SELECT split, name, COUNT(*) AS n FROM metrics WHERE step IS NULL "
                            "GROUP BY split, name")
        steps = [row["step"] for row in store.query(
            "SELECT step FROM metrics WHERE split = 'validation' AND name = 'loss' "
            "AND step IS NOT NULL ORDER BY step")]
        queued = store.one("SELECT COUNT(*) AS n FROM review_queue")["n"]
    assert training["fsdp"] is True  # sharded: accelerate did not fall back to DDP
    assert training["resumed_from_step"] == 4
    assert final and all(row["n"] == 1 for row in final)
    # each validation logged once (every 4 steps, and the last step), although steps 5 and 6
    # ran twice
    assert steps[:3] == [4, 8, 12] and steps == sorted(set(steps))
    assert queued == 5
    # the saved model is whole (gathered from the shards), plain files, loadable anywhere
    from transformers import AutoModelForCausalLM

    model_dir = tmp_path / "runs" / "cycle-1" / "model"
    assert not (model_dir / "training_args.bin").exists()
    saved = AutoModelForCausalLM.from_pretrained(model_dir)
    original = AutoModelForCausalLM.from_pretrained(base)
    assert saved.transformer.wte.weight.shape == original.transformer.wte.weight.shape
    assert not torch.equal(saved.transformer.wte.weight, original.transformer.wte.weight)
