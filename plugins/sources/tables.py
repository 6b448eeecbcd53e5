"""Tabular sources: Parquet files, Hugging Face ``datasets``, and SQL queries against SQLite.

Each streams its rows in batches (Arrow record batches, ``Dataset.iter``, a database cursor), so a
large table never sits in memory as Python objects. Rows have no lines: errors and provenance name
the row number (1-based, in the order the source reads them).

pyarrow and datasets are imported inside ``records()``: registering these sources costs nothing, and
a project that never reads Parquet never imports pyarrow.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterator

from pydantic import Field, field_validator, model_validator

from tuneloop import DataError
from tuneloop.plugins.sources.records import (FIELD_KEYS, FieldMap, Position, RecordSource,
                                              RecordSourceOptions, describe_keys)

BATCH_ROWS = 4096


def check_columns(source: RecordSource, columns: list[str]) -> None:
    """Every explicitly mapped column exists, and there is an input (or messages) column."""
    mapping = FieldMap(source.options.fields)
    listing = describe_keys(dict.fromkeys(columns))
    for field in FIELD_KEYS:
        column = mapping.column(field, columns)
        if field == "input" and column is None and mapping.column("messages", columns) is None:
            raise DataError(source.path, f"no input column {mapping.describe_input()}; columns: "
                                         f"{listing}")
        if column is not None and str(column) not in columns:
            raise DataError(source.path, f'no {field} column "{column}" (mapped in fields); '
                                         f"columns: {listing}")


def needed_columns(source: RecordSource, columns: list[str]) -> list[str]:
    """The columns the mapping reads (explicit or default), so a wide table is read narrowly."""
    mapping = FieldMap(source.options.fields)
    wanted = {str(mapping.column(field, columns)) for field in FIELD_KEYS}
    return [column for column in columns if column in wanted]


def rows_of(batches: Iterator[Any]) -> Iterator[tuple[Position, dict[str, Any]]]:
    number = 0
    for batch in batches:
        for row in batch:
            number += 1
            yield Position(number, unit="row"), row


# --------------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------------


class ParquetSource(RecordSource):
    """A Parquet file, read one record batch at a time and only the mapped columns.

    Values keep their Arrow types: a string column is text, an integer label becomes its decimal
    string, a null is "none". A column of another type (a timestamp input) is an error naming the
    row and column.
    """

    name = "parquet"

    def records(self) -> Iterator[tuple[Position, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.path
        _check_file(path)
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise DataError(path, f"not a readable Parquet file: {_first_line(error)}") from None
        with parquet:
            columns = list(parquet.schema_arrow.names)
            check_columns(self, columns)
            try:
                batches = parquet.iter_batches(batch_size=BATCH_ROWS,
                                               columns=needed_columns(self, columns))
                yield from rows_of(batch.to_pylist() for batch in batches)
            except (pa.ArrowException, OSError, ValueError) as error:
                raise DataError(path, f"cannot read: {_first_line(error)}") from None


def _check_file(path: str) -> None:
    file = Path(path)
    if not file.exists():
        raise DataError(path, "file not found")
    if file.is_dir():
        raise DataError(path, "is a directory, not a file")
    try:
        with file.open("rb"):
            pass
    except PermissionError:
        raise DataError(path, "permission denied") from None
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------------------------------
# Hugging Face datasets
# --------------------------------------------------------------------------------------------------


class HfDatasetOptions(RecordSourceOptions):
    """Where the dataset is: ``path`` (a folder written by ``save_to_disk``) or ``name`` (a hub
    dataset, with ``config`` and ``revision``; needs the network or the local cache).
    ``dataset_split`` picks a split of a ``DatasetDict`` (``train``); it may be left out when the
    folder holds a single ``Dataset`` or a dict with one split."""

    path: str | None = None  # type: ignore[assignment]
    name: str | None = None
    config: str | None = None
    revision: str | None = None
    dataset_split: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> "HfDatasetOptions":
        if (self.path is None) == (self.name is None):
            raise ValueError("give either path (a save_to_disk folder) or name (a hub dataset)")
        return self


class HfDatasetSource(RecordSource):
    """A Hugging Face ``datasets`` dataset: a local ``save_to_disk`` folder, or a hub name.

    The dataset is memory-mapped Arrow; rows are read in batches of the mapped columns only.
    """

    name = "hf_dataset"
    Options = HfDatasetOptions
    options: HfDatasetOptions

    @property
    def path(self) -> str:
        return self.options.path or f"hub:{self.options.name}"

    @property
    def label(self) -> str:
        name = Path(self.options.path).name if self.options.path else str(self.options.name)
        split = self.options.dataset_split
        return f"{name}#{split}" if split else name

    def records(self) -> Iterator[tuple[Position, Any]]:
        dataset = self._dataset()
        columns = list(dataset.column_names)
        check_columns(self, columns)
        wanted = needed_columns(self, columns)
        # a ClassLabel column holds integers; the example's label is the class's name
        names = {column: feature.int2str for column, feature in dataset.features.items()
                 if column in wanted and type(feature).__name__ == "ClassLabel"}
        batches = dataset.select_columns(wanted).iter(batch_size=BATCH_ROWS)
        for position, row in rows_of([dict(zip(batch, values)) for values in zip(*batch.values())]
                                     for batch in batches):
            for column, to_name in names.items():
                if isinstance(row.get(column), int) and row[column] >= 0:
                    row[column] = to_name(row[column])
            yield position, row

    def _dataset(self) -> Any:
        import datasets

        options = self.options
        try:
            if options.path is not None:
                path = Path(options.path)
                if not path.exists():
                    raise DataError(self.path, "folder not found")
                loaded = datasets.load_from_disk(str(path))
            else:
                loaded = datasets.load_dataset(options.name, options.config,
                                               revision=options.revision,
                                               split=options.dataset_split)
        except DataError:
            raise
        except Exception as error:  # datasets raises many kinds; all mean "cannot load this"
            hint = "" if options.path else " (a hub dataset needs the network or a local cache)"
            raise DataError(self.path, f"cannot load the dataset{hint}: "
                                       f"{type(error).__name__}: {_first_line(error)}") from None
        if isinstance(loaded, datasets.DatasetDict):
            splits = list(loaded)
            chosen = options.dataset_split
            if chosen is None and len(splits) == 1:
                chosen = splits[0]
            if chosen is None:
                raise DataError(self.path, f"the dataset has splits {', '.join(splits)}; set "
                                           f"dataset_split to one of them")
            if chosen not in loaded:
                raise DataError(self.path, f'no split "{chosen}"; the dataset has '
                                           f"{', '.join(splits)}")
            loaded = loaded[chosen]
        elif options.path is not None and options.dataset_split is not None:
            raise DataError(self.path, "the folder holds a single Dataset; leave out "
                                       "dataset_split")
        return loaded


# --------------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------------


class SqliteOptions(RecordSourceOptions):
    """``query``: a SQL ``SELECT`` whose result columns are mapped by ``fields`` (alias them
    with ``AS``). The database is opened read-only."""

    query: str = Field(min_length=1)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("query is empty")
        return query


class SqliteSource(RecordSource):
    """The rows of a SQL query against a SQLite database, read through a cursor (streamed).

    The database is opened read-only (``mode=ro``): a query can never change the data it reads. A
    query that fails (a typo, a missing table) is an error naming the database and SQLite's message.
    """

    name = "sqlite"
    Options = SqliteOptions
    options: SqliteOptions

    def records(self) -> Iterator[tuple[Position, Any]]:
        path = self.path
        _check_file(path)
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as error:
            raise DataError(path, f"cannot open the database: {error}") from None
        try:
            try:
                cursor = connection.execute(self.options.query)
            except sqlite3.DatabaseError as error:
                message = str(error)
                if "not a database" in message or "malformed" in message:
                    raise DataError(path, f"not a SQLite database: {message}") from None
                raise DataError(path, f"the query failed: {message}") from None
            except (sqlite3.Warning, ValueError) as error:  # e.g. several statements
                raise DataError(path, f"the query failed: {error}") from None
            if cursor.description is None:
                raise DataError(path, "the query returns no rows (use a SELECT)")
            columns = [description[0] for description in cursor.description]
            duplicates = sorted({c for c in columns if columns.count(c) > 1})
            if duplicates:
                raise DataError(path, f"the query returns column(s) {', '.join(duplicates)} "
                                      f"twice; alias them with AS")
            check_columns(self, columns)
            try:
                yield from rows_of([dict(zip(columns, row)) for row in rows]
                                   for rows in iter(lambda: cursor.fetchmany(BATCH_ROWS), []))
            except sqlite3.DatabaseError as error:
                raise DataError(path, f"cannot read the query's rows: {error}") from None
        finally:
            connection.close()
