"""Environments for plugin tests: a throwaway venv on top of this one, and hand-made installs.

``tuneloop plugins install`` runs pip in the environment tuneloop runs in. To test it for real
without touching the test environment (other people use it), :func:`layered_venv` makes a new,
empty venv whose ``site-packages`` adds this environment's through a ``.pth`` file: its Python sees
tuneloop, torch and pip, but pip installs into (and uninstalls from) the new venv only, and
refuses to touch anything outside it.

:func:`fake_install` writes a module and a ``.dist-info`` with an entry point straight into a
folder, as pip would, in milliseconds: for tests about loading, not about pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path


def layered_venv(path: Path) -> Path:
    """A venv at ``path`` layered on the running environment; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   capture_output=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    parents = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    # addsitedir (not a bare path line) so the parent's own .pth files run too: that is how an
    # editable tuneloop is found
    lines = [f"import site; site.addsitedir({parent!r})" for parent in parents]
    Path(purelib, "_parent_environment.pth").write_text("\n".join(lines) + "\n")
    return python


def run_cli(python: Path | str, *arguments: str, env: dict[str, str] | None = None,
            cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``python -m tuneloop.cli ARGUMENTS`` with installed plugins loading (no allowlist)."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TUNELOOP_LOAD_PLUGINS", "TUNELOOP_DEBUG", "PYTHONPATH")}
    environment.update(env or {})
    return subprocess.run([str(python), "-m", "tuneloop.cli", *arguments], capture_output=True,
                          text=True, env=environment, cwd=cwd, timeout=timeout)


def fake_install(site: Path, name: str, module_source: str, *, version: str = "1.0.0",
                 requires: list[str] = ()) -> str:
    """Install plugin ``name`` into ``site`` as pip would (module + dist-info + entry point)."""
    module = "tuneloop_fake_" + name.replace("-", "_")
    distribution = "tuneloop-fake-" + name
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    dist_info = site / f"{module}-{version}.dist-info"
    dist_info.mkdir()
    metadata = ["Metadata-Version: 2.1", f"Name: {distribution}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    (dist_info / "METADATA").write_text("\n".join(metadata) + "\n")
    (dist_info / "entry_points.txt").write_text(f"[tuneloop]\n{name} = {module}\n")
    return module


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's single error line (stderr), checked to be exactly one line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr + result.stdout
    return lines[0]
