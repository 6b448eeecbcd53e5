"""Built-in data sources: JSON Lines, JSON documents, CSV/TSV, Parquet, Hugging Face datasets,
and SQL queries against SQLite.

================  =================================================================================
``jsonl``         one JSON object per line (streamed)
``json``          a JSON array of records, at the top or at ``record_path`` (``train``, ``data.items``)
``csv``/``tsv``   a header row naming the columns (streamed)
``parquet``       a Parquet file (record batches, mapped columns only)
``hf_dataset``    a ``save_to_disk`` folder (``path``) or a hub dataset (``name``, online)
``sqlite``        the rows of a SQL ``query`` against a SQLite database (opened read-only)
``alpaca``        instruction / input / output records (JSON or JSON Lines), as chats
``sharegpt``      ShareGPT ``conversations`` (or OpenAI ``messages``) records, as chats
``dataset_info``  one entry of a LLaMA-Factory ``dataset_info.json`` (alpaca or sharegpt)
================  =================================================================================

Every source maps its records through ``fields`` the same way (``records.py``), reports every bad
record as a ``tuneloop.DataError`` naming the file and the line or row, and supports
``on_error: skip``. The person fixing the data needs to know where to look, and a Python traceback
from deep inside a parser does not tell them.
"""

from __future__ import annotations

from tuneloop import hookimpl
from tuneloop.plugins.sources.instruction_data import (AlpacaSource, DatasetInfoSource,
                                                       ShareGptSource)
from tuneloop.plugins.sources.json_document import JsonSource
from tuneloop.plugins.sources.records import FieldMap, Position, RecordSource, RecordSourceOptions
from tuneloop.plugins.sources.tables import HfDatasetSource, ParquetSource, SqliteSource
from tuneloop.plugins.sources.text_files import CsvSource, JsonlSource, TsvSource

SOURCES = (JsonlSource, JsonSource, CsvSource, TsvSource, ParquetSource, HfDatasetSource,
           SqliteSource, AlpacaSource, ShareGptSource, DatasetInfoSource)

__all__ = ["AlpacaSource", "CsvSource", "DatasetInfoSource", "FieldMap", "HfDatasetSource",
           "JsonSource", "JsonlSource", "ParquetSource", "Position", "RecordSource",
           "RecordSourceOptions", "SOURCES", "ShareGptSource", "SqliteSource", "TsvSource"]


@hookimpl
def register_data_sources(register):
    """The built-in sources."""
    for source in SOURCES:
        register(source)
