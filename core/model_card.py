"""Exporting a registered model: a standard transformers folder that says where it came from.

``export_model`` copies the cycle's saved model (weights, config, tokenizer) and adds:

- ``README.md``: a model card: the task and labels, the data it was trained and evaluated on, its
  validation, test, benchmark and human figures, the promotion decision, and the expert ratings
  that trained it (this cycle's and its ancestors', the models it continued from).
- ``tuneloop.json``: the same provenance for machines, plus what ``tuneloop predict`` needs to run
  the folder without the project (task, trainer, label names, lengths).

The folder loads with ``from_pretrained`` like any other; label names are in ``config.json``
(``id2label``) for classification.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneloop.errors import TuneloopError

if TYPE_CHECKING:  # pragma: no cover
    from tuneloop.store import Store

MANIFEST = "tuneloop.json"


def lineage(store: "Store", cycle_id: int) -> list[dict[str, Any]]:
    """The cycle and the cycles whose models it continued from, newest first: training from a
    promoted model inherits what that model learnt, ratings included."""
    chain = []
    seen: set[int] = set()
    cycle = store.cycle(cycle_id)
    while cycle is not None and cycle["id"] not in seen:
        chain.append(cycle)
        seen.add(cycle["id"])
        if cycle["start_model"] == cycle["base_model"]:
            break
        cycle = store.one("SELECT * FROM cycles WHERE model_path = ? AND id < ? "
                          "ORDER BY id DESC LIMIT 1", [cycle["start_model"], cycle["id"]])
    return chain


def training_ratings(store: "Store", cycle_id: int) -> list[dict[str, Any]]:
    """Every expert rating that trained the model, through its lineage: which cycle used it,
    through which feedback policy, who gave it and what it said."""
    ids = [cycle["id"] for cycle in lineage(store, cycle_id)]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return store.query(
        f"""SELECT u.cycle_id AS trained_cycle, u.policy, r.id AS rating_id, r.verdict,
                   r.corrected, r.score, v.name AS reviewer, o.cycle_id AS rated_cycle
            FROM feedback_usage u JOIN ratings r ON r.id = u.rating_id
            JOIN reviewers v ON v.id = r.reviewer_id JOIN outputs o ON o.id = r.output_id
            WHERE u.cycle_id IN ({marks}) ORDER BY u.cycle_id, r.id""", ids)


def manifest(store: "Store", cycle_id: int) -> dict[str, Any]:
    """What an exported folder records about its model."""
    from tuneloop.evaluation import base_figures
    from tuneloop.plugin_manager import tuneloop_version
    from tuneloop.store import now

    cycle = store.cycle(cycle_id)
    model = store.one("SELECT * FROM models WHERE cycle_id = ?", [cycle_id])
    if cycle is None or model is None:
        raise TuneloopError(f"cycle {cycle_id} has no model (see tuneloop models list)")
    config = json.loads(cycle["config"])
    stats = json.loads(cycle["stats"] or "{}")
    ratings = training_ratings(store, cycle_id)
    benchmark_names = set(store.final_metrics(cycle_id).get("benchmark", {}))
    base = {name: value for name, value in base_figures(store, cycle["project"],
                                                        cycle["base_model"]).items()
            if name in benchmark_names}
    training = config.get("training") or {}
    return {
        "tuneloop_version": tuneloop_version(),
        "exported_at": now(),
        "project": cycle["project"],
        "cycle": cycle_id,
        "task": cycle["task"],
        "trainer": (training.get("trainer") or {}).get("name"),
        "trainer_options": (training.get("trainer") or {}).get("options") or {},
        "labels": stats.get("labels"),
        "max_length": (config.get("model") or {}).get("max_length"),
        "max_new_tokens": training.get("max_new_tokens"),
        "base_model": cycle["base_model"],
        "start_model": cycle["start_model"],
        "lineage": [c["id"] for c in lineage(store, cycle_id)],
        "stage": model["stage"],
        "promotion_reasons": json.loads(model["reasons"] or "[]"),
        "metrics": store.final_metrics(cycle_id),
        "base_metrics": base,
        "data": {"splits": stats.get("splits"), "sources": stats.get("sources"),
                 "removed": stats.get("removed"), "feedback": stats.get("feedback")},
        "ratings": [{key: row[key] for key in ("rating_id", "trained_cycle", "rated_cycle",
                                               "policy", "reviewer", "verdict")}
                    for row in ratings],
        "training": {key: training.get(key) for key in
                     ("epochs", "learning_rate", "batch_size", "select_metric", "seed")},
        "regularizers": [ref.get("name") for ref in training.get("regularizers") or []],
    }


def export_model(store: "Store", cycle_id: int, destination: Path, force: bool = False) -> Path:
    """Copy the model of ``cycle_id`` to ``destination`` with a model card and a manifest."""
    info = manifest(store, cycle_id)
    model = store.one("SELECT path FROM models WHERE cycle_id = ?", [cycle_id])
    source = Path(model["path"]) if model else None
    if source is None or not (source / "config.json").is_file():
        raise TuneloopError(f"cycle {cycle_id}'s model folder {source} is gone (run folders "
                            f"may have been cleaned up)")
    if destination.exists() and any(destination.iterdir()):
        if not force:
            raise TuneloopError(f"{destination} exists and is not empty (pass --force to "
                                f"replace it)")
        shutil.rmtree(destination)
    shutil.copytree(source, destination, dirs_exist_ok=True)
    label_names_into_config(destination / "config.json", info["labels"], info["task"])
    (destination / MANIFEST).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    (destination / "README.md").write_text(model_card(info), encoding="utf-8")
    return destination


def label_names_into_config(path: Path, labels: list[str] | None, task: str) -> None:
    """Make sure ``config.json`` names the labels (``id2label``): a folder that says ``LABEL_0``
    is useless to whoever deploys it."""
    if task != "classification":
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    generic = all(str(name).startswith("LABEL_") for name in id2label.values())
    if labels and (not id2label or generic) and len(labels) == len(id2label or labels):
        config["id2label"] = {str(index): label for index, label in enumerate(labels)}
        config["label2id"] = {label: index for index, label in enumerate(labels)}
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def source_counts(sources: Any) -> list[tuple[str, Any]]:
    """``(source, examples kept)`` from a cycle's data report, which lists sources either as a
    mapping (source: count) or as records (``{"source": ..., "kept": ...}``)."""
    if isinstance(sources, dict):
        return list(sources.items())
    if isinstance(sources, list):
        return [(str(entry.get("source") or entry.get("path") or entry.get("type")),
                 entry.get("kept", entry.get("read")))
                for entry in sources if isinstance(entry, dict)]
    return []


def model_card(info: dict[str, Any]) -> str:
    """The README of an exported model (Hugging Face model-card front matter, then Markdown)."""
    pipeline = "text-classification" if info["task"] == "classification" else "text-generation"
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline}",
        "tags: [tuneloop]",
        f"base_model: {json.dumps(info['base_model'])}",
        "---",
        "",
        f"# {info['project']}: cycle {info['cycle']}",
        "",
        f"A {info['task']} model finetuned by [tuneloop](https://pypi.org/project/tuneloop/) "
        f"(version {info['tuneloop_version']}) from `{info['base_model']}`, "
        f"exported {info['exported_at']}. Registry stage: **{info['stage']}**.",
        "",
    ]
    if info["labels"]:
        lines += ["## Labels", "", ", ".join(f"`{label}`" for label in info["labels"]), ""]
    lines += ["## Data", ""]
    splits = info["data"].get("splits") or {}
    if splits:
        lines += ["| split | examples |", "|---|---|"]
        for split, count in splits.items():
            value = count.get("examples", count) if isinstance(count, dict) else count
            lines.append(f"| {split} | {value} |")
        lines.append("")
    for source, count in source_counts(info["data"].get("sources")):
        lines.append(f"- source `{source}`: {count} examples")
    feedback = info["data"].get("feedback") or {}
    if feedback:
        lines.append(f"- feedback examples from expert ratings: {feedback.get('examples', 0)}")
    lines += ["", "The test split is held out: evaluated once after training, never used to "
                  "select a checkpoint or decide promotion.", "", "## Metrics", ""]
    lines += ["| split | figure | value | base model |", "|---|---|---|---|"]
    for split, figures in info["metrics"].items():
        for name, value in figures.items():
            if "[" in name:
                continue
            base = info["base_metrics"].get(name) if split == "benchmark" else None
            lines.append(f"| {split} | {name} | {value:.4f} | "
                         f"{'' if base is None else f'{base:.4f}'} |")
    lines += ["", "## Promotion", ""]
    lines += [f"- {reason}" for reason in info["promotion_reasons"]] or ["- no decision recorded"]
    ratings = info["ratings"]
    lines += ["", "## Expert ratings that trained it", ""]
    if ratings:
        by_policy = Counter(row["policy"] for row in ratings)
        reviewers = Counter(row["reviewer"] for row in ratings)
        used_by = sorted({row["trained_cycle"] for row in ratings})
        lines.append(f"{len({row['rating_id'] for row in ratings})} ratings, used by cycles "
                     f"{', '.join(map(str, used_by))} (this model's lineage: "
                     f"{' ← '.join(str(c) for c in info['lineage'])}).")
        lines.append("")
        lines += [f"- policy `{policy}`: {count}" for policy, count in sorted(by_policy.items())]
        lines += [f"- reviewer `{name}`: {count}" for name, count in sorted(reviewers.items())]
        lines.append("")
        lines.append("Rating ids: " + ", ".join(str(row["rating_id"]) for row in ratings))
    else:
        lines.append("None: trained on the project's data only.")
    training = info["training"]
    lines += ["", "## Training", "",
              f"- started from `{info['start_model']}`",
              *(f"- {key}: {value}" for key, value in training.items() if value is not None),
              f"- regularizers: {', '.join(info['regularizers']) or 'none'}", "",
              "## Use", "", "```python"]
    if info["task"] == "classification":
        lines += ["from transformers import pipeline", "",
                  'classify = pipeline("text-classification", model="PATH/TO/THIS/FOLDER")',
                  'classify("where is my parcel?")']
    else:
        lines += ["from transformers import pipeline", "",
                  'generate = pipeline("text-generation", model="PATH/TO/THIS/FOLDER")',
                  'generate("your prompt", max_new_tokens=32)']
    lines += ["```", "", "Or with tuneloop: `tuneloop predict PATH/TO/THIS/FOLDER --input "
                         "inputs.jsonl --output answers.jsonl`.", ""]
    return "\n".join(lines)
