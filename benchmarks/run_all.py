"""Run every benchmark in this folder, one after the other, and print their tables.

    .venv/bin/python benchmarks/run_all.py

Each benchmark is a module here with a ``main()`` that prints its own figures (measured side by
side in the same run, with ratios); this script only finds and calls them, in name order.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmark_modules() -> list[Path]:
    return sorted(path for path in HERE.glob("*.py")
                  if path.name != Path(__file__).name and not path.name.startswith("_"))


def main() -> None:
    sys.path.insert(0, str(HERE))  # benchmarks may share helper modules (``_name.py``)
    for path in benchmark_modules():
        spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        if not hasattr(module, "main"):
            continue
        started = time.perf_counter()
        print(f"\n=== {path.name} ===")
        module.main()
        print(f"({path.name}: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
