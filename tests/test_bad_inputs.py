"""The bad-input corpus: every case in ``tests/bad_inputs/`` must end in the same contract.

Each case is one YAML file (``tests/bad_inputs/<area>/<name>.yaml``), so the corpus grows by
adding files; ``tests/bad_inputs/README.md`` describes the keys. For every case the CLI runs
in-process (click's ``CliRunner``) on a small project and must:

- exit with code 2;
- print at most 3 lines, and no traceback;
- name the location: every string under ``names`` (a file, a line, a field path, a plugin)
  appears in what it printed;
- leave the database as it was: the same tables, schema and row counts (or the same bytes, for a
  file that is not a readable database).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from projects import classification_rows, stub_model, write_jsonl

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(CORPUS.glob("*/*.yaml"))
KEYS = {"why", "args", "config", "config_text", "files", "binary_files", "database", "plugin",
        "env", "stdin", "names"}
DATABASES = ("none", "good", "corrupt", "truncated", "text", "newer", "folder", "locked",
             "exclusive", "empty_header", "malformed")

BASE_CONFIG: dict[str, Any] = {
    "project": "toy",
    "task": "classification",
    "model": {"name": "MODEL", "max_length": 16},
    "data": {
        "sources": [{"type": "jsonl", "path": "data.jsonl",
                     "fields": {"input": "text", "target": "intent"}}],
        "split": {"train": 0.5, "validation": 0.2, "test": 0.1, "review": 0.2, "seed": 3},
    },
    "training": {"epochs": 1, "learning_rate": 0.005, "batch_size": 8, "seed": 1},
    "review": {"size": 10, "sampler": "least_confident"},
}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


@pytest.fixture(scope="module")
def good_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with rows in the tables a project fills: a finished cycle, examples, figures,
    outputs in the review queue, a reviewer and a rating."""
    from tuneloop.components import Example, Prediction
    from tuneloop.store import Store

    path = tmp_path_factory.mktemp("good") / "tuneloop.db"
    with Store(path) as store:
        cycle = store.create_cycle(project="toy", task="classification", seed=1, config={},
                                   plugins=[], base_model="m", start_model="m", parent_id=None)
        examples = [Example(input=f"text {n}", target="billing") for n in range(3)]
        store.add_examples(cycle, {"review": examples})
        store.add_metrics(cycle, "validation", {"f1": 0.5, "accuracy": 0.6})
        outputs = store.add_outputs(cycle, [Prediction(example_id=e.id, output="billing",
                                                       confidence=0.7) for e in examples],
                                    examples)
        store.enqueue(cycle, outputs, "least_confident", 1)
        ann = store.add_reviewer("ann", "not a real hash", "expert")
        store.add_rating(reviewer_id=ann, output_id=outputs[0], verdict="approve")
        store.add_model(cycle, "/nowhere", {}, "promoted", ["pass"])
        store.update_cycle(cycle, status="done")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def snapshot(path: Path) -> Any:
    """What must not change: per table, its schema and row count; the bytes of anything else."""
    if not path.exists():
        return None
    if path.is_dir():
        return "a folder"
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            tables = connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                        "ORDER BY name").fetchall()
            return {name: (sql, connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
                    for name, sql in tables}
        finally:
            connection.close()
    except sqlite3.Error:
        return hashlib.sha256(path.read_bytes()).hexdigest()


HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    connection.execute("PRAGMA locking_mode = EXCLUSIVE")
    connection.execute("BEGIN EXCLUSIVE")
else:
    connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE reviewers SET role = role")
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def make_database(kind: str, path: Path, good: Path) -> None:
    """Put the case's database in place."""
    if kind == "none":
        return
    if kind == "folder":
        path.mkdir()
        return
    shutil.copyfile(good, path)
    if kind == "corrupt":
        path.write_bytes(random.Random(11).randbytes(16384))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:1500])
    elif kind == "text":
        path.write_text("project,notes\ntoy,this is a CSV file, not a database\n")
    elif kind == "malformed":  # a sound header and schema, the pages after the 8th garbage
        data = bytearray(good.read_bytes())
        size = int.from_bytes(data[16:18], "big")
        noise = random.Random(5)
        for page in range(8, len(data) // size):
            data[page * size:(page + 1) * size] = noise.randbytes(size)
        path.write_bytes(bytes(data))
    elif kind == "empty_header":
        data = bytearray(good.read_bytes())
        data[:16] = b"\0" * 16  # the "SQLite format 3" magic wiped
        path.write_bytes(bytes(data))
    elif kind == "newer":
        with sqlite3.connect(path) as connection:
            connection.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', "
                               "'2031-01-01T00:00:00')")
        connection.close()


def hold(kind: str, path: Path) -> subprocess.Popen | None:
    """For ``locked`` and ``exclusive``: another process holding the database's write lock (or,
    exclusive, every lock) until its stdin closes."""
    if kind not in ("locked", "exclusive"):
        return None
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), kind],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def load_plugin(source: str, name: str, folder: Path) -> Any:
    file = folder / f"bad_input_{name}.py"
    file.write_text(textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(file.stem, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_is_large_and_well_formed():
    assert len(CASES) >= 60, f"only {len(CASES)} cases"
    areas = {case.parent.name for case in CASES}
    assert areas >= {"config", "data", "plugins", "database", "cli"}, areas
    for case in CASES:
        spec = yaml.safe_load(case.read_text(encoding="utf-8"))
        assert set(spec) <= KEYS, f"{case}: unknown keys {set(spec) - KEYS}"
        assert spec.get("args") and spec.get("names") and spec.get("why"), case
        assert spec.get("database", "good") in DATABASES, case


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_bad_input(case: Path, tmp_path: Path, good_database: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneloop.cli import cli
    from tuneloop.testing import register_plugin

    spec = yaml.safe_load(case.read_text(encoding="utf-8"))
    project = tmp_path / "project"
    project.mkdir()
    write_jsonl(project / "data.jsonl", classification_rows(per_label=8))
    model = stub_model(tmp_path)
    config_path = project / "tuneloop.yaml"
    database = project / "tuneloop.db"
    places = {"config": str(config_path), "dir": str(project), "db": str(database),
              "model": model}
    if "config_text" in spec:
        text = spec["config_text"]
    else:
        config = merge(json.loads(json.dumps(BASE_CONFIG)), spec.get("config") or {})
        if config.get("model", {}).get("name") == "MODEL":
            config["model"]["name"] = model
        text = yaml.safe_dump(config, sort_keys=False)
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    config_path.write_text(text, encoding="utf-8")
    for name, text in (spec.get("files") or {}).items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")
    for name, hexdata in (spec.get("binary_files") or {}).items():
        (project / name).write_bytes(bytes.fromhex(hexdata))
    make_database(spec.get("database", "good"), database, good_database)
    before = snapshot(database)
    holder = hold(spec.get("database", "good"), database)
    try:
        for key, value in (spec.get("env") or {}).items():
            monkeypatch.setenv(key, str(value))
        monkeypatch.chdir(project)
        args = [str(arg).format(**places) for arg in spec["args"]]
        plugin = (load_plugin(spec["plugin"], case.stem, tmp_path) if spec.get("plugin")
                  else None)
        runner = CliRunner()
        if plugin is not None:
            with register_plugin(plugin, name=f"corpus-{case.stem}"):
                result = runner.invoke(cli, args, input=spec.get("stdin"))
        else:
            result = runner.invoke(cli, args, input=spec.get("stdin"))
    finally:
        if holder is not None:
            holder.stdin.close()  # type: ignore[union-attr]
            holder.wait(10)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        output += "".join(traceback.format_exception(result.exception))
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.exit_code == 2, f"exit {result.exit_code}:\n{output}"
    assert "Traceback" not in output, output
    assert len(lines) <= 3, f"{len(lines)} lines:\n{output}"
    for name in spec["names"]:
        assert str(name).format(**places) in output, f"{name!r} not named in:\n{output}"
    assert snapshot(database) == before, "the database changed"
