"""The shared training loop: schedules, optimizers, accumulation, precision, model adjustments,
LoRA, length-grouped batches, atomic checkpoints, TensorBoard and the progress bar.

Every training run here is a tiny BERT on a toy sentiment task, a few dozen steps on a CPU.
"""

from __future__ import annotations

import math

import pytest

from tuneloop import Example, Regularizer
from tuneloop.errors import ConfigError
from tuneloop.plugins.metrics import Accuracy
from tuneloop.plugins.trainers import batching, checkpoints, classification, common
from tuneloop.testing import cycle_context, tiny_bert
from training_data import sentiment_examples, sentiment_texts


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert"), sentiment_texts())


TRAIN, VALIDATION = sentiment_examples(48, seed=1), sentiment_examples(12, seed=2)


class Watch(Regularizer):
    """Keeps what the trainer hands its callbacks when training begins, and every step's rate."""

    name = "watch"

    def __init__(self):
        super().__init__()
        self.begin: dict = {}
        self.rates: list[float] = []

    def callbacks(self):
        from transformers import TrainerCallback

        watch = self

        class Keep(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                watch.begin = {"args": args, "state": state, **kwargs}

            def on_step_end(self, args, state, control, **kwargs):
                watch.rates.append(kwargs["lr_scheduler"].get_last_lr()[0])

        return [Keep()]


def train(base, tmp_path, regularizers=(), examples=TRAIN, **training):
    settings = {"epochs": 2, "learning_rate": 5e-3, "batch_size": 8, "tensorboard": False,
                **training}
    context = cycle_context(tmp_path, task="classification", start_model=base,
                            labels=["neg", "pos"], metrics=[Accuracy()],
                            training={"select_metric": "accuracy", **settings})
    trainer = classification.SequenceClassificationTrainer()
    result = trainer.train(context, {"train": examples, "validation": VALIDATION},
                           list(regularizers))
    return result, context


# --------------------------------------------------------------------------------------------------
# Schedules, optimizers, accumulation, precision
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "step"])
def test_learning_rate_schedules_follow_their_formula_after_warmup(base, tmp_path, schedule):
    watch = Watch()
    rate, total, warmup = 1e-3, 12, 3  # 48 examples / 8 = 6 steps per epoch, 2 epochs
    train(base, tmp_path, [watch], learning_rate=rate, warmup_ratio=0.25, schedule=schedule,
          step_decay={"step_size": 4, "gamma": 0.5})
    assert len(watch.rates) == total

    def expected(step: int) -> float:  # the rate used for the step after `step` steps
        if step < warmup:
            return rate * ((step + 1) / (warmup + 1) if schedule == "step" else step / warmup)
        progress = (step - warmup) / (total - warmup)
        return rate * {"constant": 1.0, "linear": 1 - progress,
                       "cosine": 0.5 * (1 + math.cos(math.pi * progress)),
                       "step": 0.5 ** ((step - warmup) // 4)}[schedule]

    # get_last_lr after step n is the rate for step n + 1
    assert watch.rates == pytest.approx([expected(step) for step in range(1, total + 1)])


@pytest.mark.parametrize("name, optimizer", [("sgd", "SGD"), ("adagrad", "Adagrad"),
                                             ("rmsprop", "RMSprop"), ("adafactor", "Adafactor"),
                                             ("adamw", "AdamW")])
def test_the_configured_optimizer_trains(base, tmp_path, name, optimizer):
    watch = Watch()
    train(base, tmp_path, [watch], optimizer=name, epochs=0.2)
    assert type(watch.begin["optimizer"].optimizer).__name__ == optimizer


def test_gradient_accumulation_makes_fewer_larger_steps(base, tmp_path):
    single, _ = train(base, tmp_path / "one", epochs=1)
    accumulated, _ = train(base, tmp_path / "four", epochs=1, gradient_accumulation=3)
    assert single.global_step == 6 and accumulated.global_step == 2
    assert accumulated.extra["arguments"]["gradient_accumulation_steps"] == 3


def test_mixed_precision_is_used_where_the_hardware_has_it(tmp_path):
    import torch

    context = cycle_context(tmp_path, task="classification", start_model="unused")
    if not torch.cuda.is_available():
        assert common.precision_arguments("auto", context) == {}  # CPU: full precision
        with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
            common.precision_arguments("fp16", context)
    else:
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        assert common.precision_arguments("auto", context) == {expected: True}
    assert common.precision_arguments("bf16", context) == {"bf16": True, "fp16": False}


# --------------------------------------------------------------------------------------------------
# Model adjustments and LoRA
# --------------------------------------------------------------------------------------------------


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(f"{model_dir}/model.safetensors")


def changed(before, after, prefix):
    names = [name for name in after if name.startswith(prefix) and name in before]
    assert names, prefix
    return {name: not before[name].equal(after[name]) for name in names}


def test_frozen_embeddings_and_layers_stay_as_they_were(base, tmp_path):
    result, _ = train(base, tmp_path, freeze_embeddings=True, freeze_layers=1)
    start, end = weights(base), weights(result.model_dir)
    start = {f"bert.{name}": value for name, value in start.items()}  # the encoder's names
    assert not any(changed(start, end, "bert.embeddings.").values())
    assert not any(changed(start, end, "bert.encoder.layer.0.").values())
    assert all(changed(start, end, "bert.encoder.layer.1.attention.self.query.").values())


def test_freezing_more_layers_than_the_model_has_is_a_config_error(base, tmp_path):
    with pytest.raises(ConfigError, match="training.freeze_layers: the model has 2 layers"):
        train(base, tmp_path, freeze_layers=3)


def test_reinit_head_starts_the_head_afresh_even_for_the_same_labels(base, tmp_path):
    first, _ = train(base, tmp_path / "first", epochs=1)
    again, _ = train(first.model_dir, tmp_path / "again", epochs=0.01, learning_rate=1e-9)
    fresh, _ = train(first.model_dir, tmp_path / "fresh", epochs=0.01, learning_rate=1e-9,
                     reinit_head=True)
    trained = weights(first.model_dir)["classifier.weight"]
    assert weights(again.model_dir)["classifier.weight"].allclose(trained)
    assert not weights(fresh.model_dir)["classifier.weight"].allclose(trained)
    with pytest.raises(ConfigError, match="reinit_head"):
        from tuneloop.plugins.trainers import adjustments

        context = cycle_context(tmp_path, task="causal-lm", start_model="unused",
                                training={"reinit_head": True})
        adjustments.apply_config(object(), context.config.training, "causal-lm")


def test_lora_merged_saves_a_plain_model_that_learnt(base, tmp_path):
    result, context = train(base, tmp_path, epochs=6, learning_rate=2e-2,
                            lora={"r": 8, "alpha": 16, "dropout": 0.0,
                                  "target_modules": "all-linear"})
    saved = {path.name for path in (tmp_path / "model").iterdir()}
    assert "adapter_config.json" not in saved and "model.safetensors" in saved
    start, end = weights(base), weights(result.model_dir)
    start = {f"bert.{name}": value for name, value in start.items()}
    # the linear layers' weights took the merged adapters; biases and norms are as they were
    assert all(changed(start, end, "bert.encoder.layer.0.attention.self.query.weight").values())
    assert not any(changed(start, end, "bert.encoder.layer.0.attention.self.query.bias").values())
    assert not any(changed(start, end, "bert.embeddings.").values())
    assert result.best_metric >= 0.9  # a random body: only the adapters and the head learnt


def test_lora_adapter_saves_adapters_that_predict_and_train_on(base, tmp_path):
    result, context = train(base, tmp_path / "a", epochs=3, learning_rate=2e-2,
                            lora={"r": 4, "alpha": 8, "dropout": 0.0, "save": "adapter"})
    saved = {path.name for path in (tmp_path / "a" / "model").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= saved
    assert "model.safetensors" not in saved
    trainer = classification.SequenceClassificationTrainer()
    predictions = trainer.predict(result.model_dir, VALIDATION, context)
    accuracy = sum(p.output == e.target for p, e in zip(predictions, VALIDATION)) / len(VALIDATION)
    assert accuracy == pytest.approx(result.best_metric)
    # the next cycle can start from the adapter folder: the trained model, head and all
    again, _ = train(result.model_dir, tmp_path / "b", epochs=0.2, learning_rate=1e-9)
    assert again.global_step == 2 and again.best_metric == pytest.approx(result.best_metric)


# --------------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------------


def test_length_grouped_batches_cover_every_example_with_little_padding():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(4, 60) for _ in range(2000)]
    order = batching.length_grouped_indices(lengths, 16, random.Random(1))
    assert sorted(order) == list(range(2000))

    def padding(indices):
        batches = [indices[start:start + 16] for start in range(0, len(indices), 16)]
        padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
        return 1 - sum(lengths) / padded

    shuffled = list(range(2000))
    rng.shuffle(shuffled)
    assert padding(order) < 0.02 < 0.3 < padding(shuffled)
    assert lengths[order[0]] == max(lengths)  # the longest batch first: memory fails at once
    # the loader cuts the order into batches of 16: each is one of the sampler's sorted batches
    batches = [order[start:start + 16] for start in range(0, 2000, 16)]
    assert max(max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
               for batch in batches) <= 3


def test_samplers_give_the_same_order_for_an_epoch_and_another_for_the_next():
    lengths = list(range(1, 101))
    for sampler in (batching.LengthGroupedSampler(lengths, 8, seed=3),
                    batching.ShuffledSampler(100, seed=3)):
        sampler.set_epoch(1)
        first = list(sampler)
        sampler.set_epoch(2)
        second = list(sampler)
        sampler.set_epoch(1)
        assert list(sampler) == first != second


def test_the_padding_fraction_is_measured_and_grouping_lowers_it(base, tmp_path):
    import random

    rng = random.Random(5)
    varied = [Example(" ".join([example.input] + rng.choice(["", "the plot", "really quite " * 4])
                               .split()), example.target) for example in TRAIN]
    grouped, _ = train(base, tmp_path / "grouped", examples=varied, epochs=1)
    shuffled, _ = train(base, tmp_path / "shuffled", examples=varied, epochs=1,
                        group_by_length=False)
    assert 0 <= grouped.extra["padding_fraction"] < shuffled.extra["padding_fraction"] < 1

    count = batching.PaddingCount()
    import torch

    count.add({"attention_mask": torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]), "labels": None})
    assert count.fraction() == pytest.approx(2 / 8)


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def test_a_checkpoint_cut_short_never_looks_whole(base, tmp_path, monkeypatch):
    from transformers import Trainer

    saves = {"count": 0}
    original = Trainer._save_rng_state

    def crash_on_second_save(self, output_dir):
        saves["count"] += 1
        if saves["count"] == 2:
            raise RuntimeError("killed while writing")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", crash_on_second_save)
    with pytest.raises(RuntimeError, match="killed while writing"):
        train(base, tmp_path, eval_every=2, epochs=1)
    folder = tmp_path / "checkpoints"
    assert [path.name for path in folder.iterdir() if path.name.startswith("checkpoint")] == \
        ["checkpoint-2"]
    assert (folder / ".staging" / "checkpoint-4" / "model.safetensors").exists()  # the partial
    assert checkpoints.last_complete(folder).name == "checkpoint-2"

    monkeypatch.setattr(Trainer, "_save_rng_state", original)
    result, _ = train(base, tmp_path, eval_every=2, epochs=1)
    assert result.extra["resumed_from_step"] == 2 and result.global_step == 6
    assert not folder.exists()


def test_every_checkpoint_file_loads_with_weights_only_or_safetensors(base, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers.trainer_pt_utils import safe_globals

    class Stop(Regularizer):
        name = "stop"

        def callbacks(self):
            from transformers import TrainerCallback

            class Raise(TrainerCallback):
                def on_step_end(self, args, state, control, **kwargs):
                    if state.global_step == 3:
                        raise KeyboardInterrupt

            return [Raise()]

    with pytest.raises(KeyboardInterrupt):
        train(base, tmp_path, [Stop()], eval_every=2, epochs=1)
    checkpoint = checkpoints.last_complete(tmp_path / "checkpoints")
    loaded = 0
    for path in checkpoint.iterdir():
        if path.suffix == ".safetensors":
            load_file(path)
            loaded += 1
        elif path.suffix in (".pt", ".pth", ".bin"):
            # tensors, and numpy arrays in the RNG states (allow-listed as transformers does)
            with safe_globals():
                torch.load(path, weights_only=True)
            loaded += 1
    names = {path.name for path in checkpoint.iterdir()}
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth",
            "trainer_state.json", "training_args.json"} <= names and loaded == 4


# --------------------------------------------------------------------------------------------------
# What training reports: TensorBoard, progress, figures
# --------------------------------------------------------------------------------------------------


def test_tensorboard_event_files_hold_the_training_figures(base, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(base, tmp_path, tensorboard=True, epochs=1)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/accuracy", "eval/loss", "train/learning_rate"} <= tags


def test_the_progress_bar_shows_the_latest_figures():
    import contextlib
    from types import SimpleNamespace

    from tuneloop.context import Progress
    from tuneloop.plugins.trainers.callbacks import ProgressCallback

    shown = []

    class Recording(Progress):
        @contextlib.contextmanager
        def task(self, description, total):
            yield lambda n=1, info=None: shown.append((n, info))

    with contextlib.ExitStack() as scope:
        callback = ProgressCallback(Recording(), scope)
        args = SimpleNamespace(metric_for_best_model="f1")
        callback.on_train_begin(args, SimpleNamespace(max_steps=10, global_step=0), None)
        callback.on_step_end(args, None, None)
        callback.on_log(args, None, None, logs={"loss": 0.51234, "learning_rate": 1e-4})
        callback.on_log(args, None, None, logs={"eval_f1": 0.875, "eval_loss": 0.3,
                                                "eval_runtime": 1.0})
    assert shown[0] == (1, None)
    assert shown[-1] == (0, "loss 0.5123  val loss 0.3  val f1 0.875")
