"""Pathological sizes: one 50 MB single-line input costs memory and time in proportion to its
size, not its length times the number of MinHash permutations (which once asked for 47.7 GiB).

Each check runs in a child process under an address-space limit (RLIMIT_AS), so a regression
fails the test with a MemoryError instead of taking the machine down.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from projects import write_config

LIMIT = 3 * 2 ** 30  # address space of the child: the interpreter, numpy, and the 50 MB line
LINE_MB = 50


PEAK_MB = """
def peak_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
"""


def limited(script: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    # ru_maxrss survives exec on Linux (it would report the pytest parent's peak): the child reads
    # its own high-water mark, VmHWM, which a new process image starts afresh.
    script = PEAK_MB + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd,
                          preexec_fn=cap, capture_output=True, text=True, timeout=timeout,
                          env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                               "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def long_line(size_mb: int = LINE_MB) -> str:
    """Words that never repeat in a row (so its shingles are many): ``size_mb`` MB of them."""
    words = " ".join(f"w{number:x}" for number in range(200_000))
    return (words + " ") * (size_mb * 2 ** 20 // (len(words) + 1))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pathological")
    rows = [{"text": f"check my balance please {number}", "label": f"l{number % 2}"}
            for number in range(200)]
    rows.insert(100, {"text": long_line(), "label": "l0"})
    with (directory / "data.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return write_config(directory, {
        "project": "huge", "task": "classification", "model": {"name": "no-such-model"},
        "data": {"sources": [{"type": "jsonl", "path": "data.jsonl",
                              "fields": {"input": "text", "target": "label"}}],
                 "cleaners": ["unicode_normalize", "normalize_whitespace", "drop_empty",
                              "drop_duplicates", "drop_near_duplicates"],
                 "split": {"train": 0.6, "validation": 0.2, "test": 0.1, "review": 0.1,
                           "seed": 3},
                 "leakage": {"action": "report", "near_threshold": 0.8}}})


def test_a_50_mb_input_is_sketched_within_bounded_memory(tmp_path):
    result = limited(f"""
        import resource, time
        from tuneloop.near_duplicates import MAX_CHARS, NearDuplicateIndex
        words = " ".join(f"w{{number:x}}" for number in range(200_000))
        line = (words + " ") * ({LINE_MB} * 2 ** 20 // (len(words) + 1))
        started = time.perf_counter()
        index = NearDuplicateIndex(0.8)
        index.add(["a short text about a balance", line])
        # the same first MAX_CHARS characters: a near duplicate by what the check reads
        match = index.match([line[:MAX_CHARS] + " something else entirely"])
        seconds = time.perf_counter() - started
        peak = peak_mb()
        print(len(line), match, index.cut, round(seconds, 2), round(peak))
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    size, match, cut, seconds, peak = result.stdout.split(" ", 1)[0], *result.stdout.rsplit(
        " ", 4)[1:]
    assert int(size) > LINE_MB * 2 ** 20 * 0.9
    assert "(1, 1.0)" in result.stdout  # the long text, found by its first MAX_CHARS characters
    assert int(cut) == 2  # the long line, added and then matched by a longer-than-cap query
    assert float(seconds) < 60
    assert float(peak) < 1024, result.stdout  # MB: a few copies of the line, not 47.7 GiB


@pytest.mark.slow  # 50 MB through every cleaner and the leakage check: ~45 s on a busy machine
def test_preparing_data_with_a_50_mb_input_stays_bounded_and_says_it_cut(project):
    result = limited("""
        import json, resource
        from tuneloop import registries
        from tuneloop.config import load_config
        from tuneloop.cycle import prepare_data
        prepared = prepare_data(load_config("tuneloop.yaml"), registries.build(), None)
        peak = peak_mb()
        print(json.dumps({"leakage": prepared.report["leakage"], "peak": peak,
                          "longest": max(len(e.input) for s in prepared.splits.values()
                                         for e in s)}))
    """, project.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["longest"] > LINE_MB * 2 ** 20 * 0.9  # the line itself is kept whole
    assert found["leakage"]["near_chars_per_input"] == 10_000
    assert found["leakage"]["inputs_cut"] == 1
    assert found["peak"] < 2048, found


def test_the_data_report_says_what_the_near_check_read():
    from io import StringIO

    from rich.console import Console

    from tuneloop.data_report import _leakage

    output = StringIO()
    _leakage({"leakage": {"near_threshold": 0.9, "leaks": 0, "inputs_cut": 3,
                          "near_chars_per_input": 10_000}}, Console(file=output, width=200))
    assert "read the first 10,000 characters of 3 longer input(s)" in output.getvalue()
