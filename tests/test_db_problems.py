"""The database file itself gone wrong: one line naming the file and what to do, exit 2, nothing
half-written, from ``run``, ``status`` and the other commands (issue 11, class 1).

The in-process cases (corrupt, truncated, newer schema, locked, a folder) are in the bad-input
corpus (``tests/bad_inputs/database``). Here are the ones that need a real environment:

- a full disk: a 700 KiB tmpfs in a private mount namespace (``unshare -m`` as root, ``unshare
  -rm`` otherwise), filled up before the command; skipped where neither may mount;
- a read-only file or folder: permissions do not stop root, so as root the command runs as
  ``nobody`` (``setpriv``); otherwise as this user;
- a lock held by another process: the message names that process's id (``/proc/locks``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from projects import classification_rows, stub_model, write_jsonl
from tuneloop.store import Store
from tuneloop.store.problems import DatabaseError, explain, kind_of, lock_holders

TUNELOOP = [sys.executable, "-m", "tuneloop.cli"]
NOBODY = 65534


def project(folder: Path) -> Path:
    write_jsonl(folder / "data.jsonl", classification_rows(per_label=8))
    config = {"project": "toy", "task": "classification",
              "model": {"name": stub_model(folder), "max_length": 16},
              "data": {"sources": [{"type": "jsonl", "path": "data.jsonl",
                                    "fields": {"input": "text", "target": "intent"}}]}}
    path = folder / "tuneloop.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with Store(folder / "tuneloop.db") as store:
        store.add_reviewer("ann", "hash", "expert")
    for suffix in ("-wal", "-shm"):
        Path(f"{folder}/tuneloop.db{suffix}").unlink(missing_ok=True)
    return path


def counts(database: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                for name in names}
    finally:
        connection.close()


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, lines
    return lines[0]


# ---- a full disk ---------------------------------------------------------------------------------


def can_mount() -> list[str] | None:
    """The ``unshare`` words that give a private mount namespace where tmpfs mounts, or None."""
    if shutil.which("unshare") is None:
        return None
    for words in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*words, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True)
        if probe.returncode == 0:
            return words
    return None


FULL_DISK = """
set -u
mount -t tmpfs -o size=700k tmpfs "$DISK"
cp "$SOURCE"/tuneloop.yaml "$SOURCE"/data.jsonl "$SOURCE"/tuneloop.db "$DISK"/
cp -r "$SOURCE"/stub-model "$DISK"/
sed -i "s#$SOURCE#$DISK#" "$DISK"/tuneloop.yaml
dd if=/dev/zero of="$DISK"/filler bs=4k 2>/dev/null
for command in run status; do
  if [ $command = run ]; then args="--quiet"; else args=""; fi
  "$PYTHON" -m tuneloop.cli $command "$DISK"/tuneloop.yaml $args > "$OUT"/$command.out 2>&1
  echo $? > "$OUT"/$command.rc
done
rm "$DISK"/filler
cp "$DISK"/tuneloop.db "$OUT"/after.db
"""


def test_a_full_disk_is_one_line_naming_the_file_and_free_space(tmp_path):
    words = can_mount()
    if words is None:
        pytest.skip("no private mount namespace here (unshare -m / -rm refused): no tmpfs")
    source, disk, out = tmp_path / "source", tmp_path / "disk", tmp_path / "out"
    for folder in (source, disk, out):
        folder.mkdir()
    project(source)
    before = counts(source / "tuneloop.db")
    subprocess.run([*words, "sh", "-c", FULL_DISK], check=True, timeout=300,
                   env={**environment(), "DISK": str(disk), "SOURCE": str(source),
                        "OUT": str(out), "PYTHON": sys.executable})
    for command in ("run", "status"):
        text = (out / f"{command}.out").read_text()
        lines = [line for line in text.splitlines() if line.strip()]
        assert (out / f"{command}.rc").read_text().strip() == "2", text
        assert "Traceback" not in text and len(lines) == 1, text
        assert f"{disk}/tuneloop.db" in lines[0] and "disk is full" in lines[0], text
        assert "free" in lines[0]
    assert counts(out / "after.db") == before  # no cycle row, nothing half-written


# ---- read-only --------------------------------------------------------------------------------


def as_other_user() -> list[str]:
    """Run as ``nobody`` when root (permission bits do not stop root), else as this user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: cannot drop privileges to test permissions")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture
def shared_folder():
    """A folder outside pytest's private (0700) temporary tree, so ``nobody`` can reach it."""
    folder = Path(tempfile.mkdtemp(prefix="tuneloop-readonly-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_database_is_one_line_saying_fix_the_permissions(shared_folder, what):
    prefix = as_other_user()
    config = project(shared_folder)
    database = shared_folder / "tuneloop.db"
    before = counts(database)
    for suffix in ("-wal", "-shm"):  # with these in place SQLite can write (they are the WAL)
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    if prefix:
        for path in [shared_folder, *shared_folder.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
    database.chmod(0o444 if what == "file" else 0o644)
    shared_folder.chmod(0o755 if what == "file" else 0o555)
    result = subprocess.run([*prefix, *TUNELOOP, "run", str(config), "--quiet"],
                            capture_output=True, text=True, env=environment(), timeout=300,
                            cwd="/")
    line = one_error_line(result)
    assert str(database) in line and "permissions" in line
    assert ("file is read-only" if what == "file" else "folder is read-only") in line
    shared_folder.chmod(0o755)
    assert counts(database) == before
    # reading is fine: status shows the (empty) project rather than failing
    status = subprocess.run([*prefix, *TUNELOOP, "status", str(config)], capture_output=True,
                            text=True, env=environment(), timeout=300, cwd="/")
    assert "Traceback" not in status.stderr


# ---- locked by another process ------------------------------------------------------------------


def test_a_lock_held_too_long_names_the_process_holding_it(tmp_path):
    config = project(tmp_path)
    database = tmp_path / "tuneloop.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], "
         "isolation_level=None); c.execute('BEGIN IMMEDIATE'); "
         "c.execute('UPDATE reviewers SET role = role'); print('holding', flush=True); "
         "sys.stdin.read()", str(database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        if Path("/proc/locks").exists():
            assert holder.pid in lock_holders(database)
        result = subprocess.run([*TUNELOOP, "run", str(config), "--quiet"], capture_output=True,
                                text=True, timeout=300,
                                env={**environment(), "TUNELOOP_BUSY_TIMEOUT": "0.5"})
        line = one_error_line(result)
        assert str(database) in line and "locked by another writer for 0.5 s" in line
        if Path("/proc").exists():
            assert f"pid {holder.pid}" in line
        # a reader is not blocked by a writer (WAL): status still answers
        status = subprocess.run([*TUNELOOP, "status", str(config)], capture_output=True,
                                text=True, timeout=300,
                                env={**environment(), "TUNELOOP_BUSY_TIMEOUT": "0.5"})
        assert status.returncode == 0, status.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert counts(database)["cycles"] == 0


# ---- the translation itself ---------------------------------------------------------------------


def test_program_errors_are_not_translated():
    assert kind_of(sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert kind_of(sqlite3.OperationalError("no such table: cycles")) is None
    assert explain("x.db", ValueError("database is locked")) is None


@pytest.mark.parametrize("message, kind", [
    ("file is not a database", "corrupt"), ("database disk image is malformed", "corrupt"),
    ("attempt to write a readonly database", "readonly"), ("database is locked", "locked"),
    ("database or disk is full", "full"), ("unable to open database file", "cannot_open")])
def test_sqlite_messages_are_classified(message, kind):
    assert kind_of(sqlite3.OperationalError(message)) == kind


def test_a_newer_schema_is_refused_before_anything_is_written(tmp_path):
    database = tmp_path / "tuneloop.db"
    with Store(database):
        pass
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO _migrations VALUES ('m999_future', 'x')")
    connection.close()
    before = database.read_bytes()
    with pytest.raises(DatabaseError, match="newer tuneloop .*m999_future") as caught:
        Store(database)
    assert caught.value.kind == "newer" and caught.value.exit_code == 2
    assert database.read_bytes() == before


def test_an_up_to_date_database_is_opened_without_the_write_lock(tmp_path):
    """``status`` must work while a cycle writes: migrate() only reads when nothing is due."""
    database = tmp_path / "tuneloop.db"
    with Store(database):
        pass
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        os.environ["TUNELOOP_BUSY_TIMEOUT"] = "0.2"
        with Store(database) as store:
            assert store.reviewers() == []
            with pytest.raises(DatabaseError, match="locked"):
                store.add_reviewer("ann", "h", "expert")
    finally:
        os.environ.pop("TUNELOOP_BUSY_TIMEOUT", None)
        holder.execute("ROLLBACK")
        holder.close()
