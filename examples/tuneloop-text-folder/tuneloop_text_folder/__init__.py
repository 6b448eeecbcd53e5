"""tuneloop-text-folder: a tuneloop data source, ``text_folder``.

Reads a folder of ``.txt`` files, one example per file, labelled by the sub-folder it is in::

    data:
      sources:
        - {type: text_folder, path: tickets/}

tuneloop finds this module through the entry point ``text-folder`` in the group ``tuneloop`` (see
``pyproject.toml``); the hookimpl at the bottom hands the class to tuneloop's registries.
Module-level imports stay light (no torch, transformers or evaluate): tuneloop imports plugins when
it builds its registries, and ``tuneloop validate`` should stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import field_validator

from tuneloop import DataError, DataSource, Example, SourceOptions, hookimpl

__version__ = "0.1.0"

# tuneloop refuses to load this plugin, naming it and saying why, when its version is outside this.
TUNELOOP_REQUIRES = ">=0.1,<1"


# --------------------------------------------------------------------------------------------------
# Data source: text_folder
# --------------------------------------------------------------------------------------------------


class TextFolderOptions(SourceOptions):
    """Options of ``text_folder``.

    ``path`` (required, from ``SourceOptions``) is the folder; ``split`` pins every example to one
    split. ``encoding`` is the files' text encoding, checked strictly; ``strip`` removes leading and
    trailing whitespace (the newline an editor adds at the end of a file, for instance).
    ``fields`` is refused: a folder has no columns to map.
    """

    encoding: str = "utf-8"
    strip: bool = True

    @field_validator("fields")
    @classmethod
    def _no_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        if fields:
            raise ValueError("text_folder has no fields to map: the input is the file's text and "
                             "the target its sub-folder's name")
        return fields

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f'unknown encoding "{encoding}"') from None
        return encoding


class TextFolderSource(DataSource):
    """A folder of ``.txt`` files, one example per file; the label is the sub-folder's name.

    ::

        tickets/
          billing/   invoice-wrong.txt  charged-twice.txt
          shipping/  late.txt
          new.txt                       <- directly in the folder: unlabeled (target None)

    Files are read in sorted path order, so the examples come in the same order on every machine.
    A file deeper down (``billing/2024/a.txt``) takes the label of its top sub-folder
    (``billing``). Hidden files and folders (names starting with ``.``) and files with other
    extensions are ignored. An empty file gives an example with an empty input: the ``drop_empty``
    cleaner removes it and reports which one.

    Errors are ``tuneloop.DataError`` naming the folder or the file: a missing folder, a path that
    is a file, a folder without ``.txt`` files, a file that is not valid in ``encoding``.
    """

    name = "text_folder"
    Options = TextFolderOptions
    options: TextFolderOptions

    def load(self) -> Iterator[Example]:
        root = Path(self.options.path)
        for file in self._files(root):
            relative = file.relative_to(root)
            label = relative.parts[0] if len(relative.parts) > 1 else None
            text = self._read(file)
            if self.options.strip:
                text = text.strip()
            yield Example(input=text, target=label, source=root.name, split=self.options.split,
                          provenance={"kind": "original", "file": relative.as_posix()})

    def _files(self, root: Path) -> list[Path]:
        if not root.exists():
            raise DataError(str(root), "folder not found")
        if not root.is_dir():
            raise DataError(str(root), "is a file; text_folder needs a folder of .txt files")
        files = sorted(
            path for path in root.rglob("*.txt")
            if path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(root).parts)
        )
        if not files:
            raise DataError(str(root), "no .txt files (expected <folder>/<label>/<name>.txt)")
        return files

    def _read(self, file: Path) -> str:
        try:
            data = file.read_bytes()
        except OSError as error:
            raise DataError(str(file), f"cannot read: {error.strerror or error}") from None
        try:
            text = data.decode(self.options.encoding)
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise DataError(str(file), f"not valid {self.options.encoding}: byte "
                                       f"0x{data[error.start]:02x}", line) from None
        return text.removeprefix("\ufeff")  # a byte-order mark is not part of the text


# --------------------------------------------------------------------------------------------------
# Hook: hand the component class to tuneloop's registries.
# --------------------------------------------------------------------------------------------------


@hookimpl
def register_data_sources(register):
    register(TextFolderSource)
