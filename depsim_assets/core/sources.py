"""Source files as they are published: shape detected from content, records streamed, file faults contained.

A file's compression and shape are read from its bytes, never its name's case: gzip and Parquet by
their magic bytes, a JSON array or a single (pretty-printed) JSON document versus JSON lines by the
first bytes of text, CSV by the `.csv` suffix. Records stream one at a time in every shape (a JSON
array through ijson), so a large file is never loaded whole. A fault in the file itself — a truncated
or corrupt gzip stream, a malformed array, an unreadable Parquet footer — keeps every record read
before it and ends the file with one quarantined record carrying a file-level reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import ijson
import orjson
import pyarrow.parquet as pq

from depsim_assets.core.formats import Rejected

Shape = Literal["jsonl", "json_array", "json_document", "csv", "parquet"]
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
BOM = b"\xef\xbb\xbf"
PEEK = 64 * 1024
COMPRESSION_FAULTS = (EOFError, gzip.BadGzipFile, zlib.error)


class SourcePathError(ValueError):
    """A configured source path that cannot be read as a file (a directory, no permission)."""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    compressed: bool
    shape: Shape


def _open(path: Path, compressed: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115


def inspect(path: Path) -> SourceFile:
    if path.is_dir():
        raise SourcePathError(f"source path {path} is a directory: list its files or use a glob such as {path}/*.jsonl")
    if not path.exists():
        raise SourcePathError(f"source path {path} does not exist")
    if not os.access(path, os.R_OK):
        raise SourcePathError(f"source path {path} is not readable (permissions)")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == PARQUET_MAGIC:
        return SourceFile(path, False, "parquet")
    compressed = magic[:2] == GZIP_MAGIC
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return SourceFile(path, compressed, "csv")
    try:
        with _open(path, compressed) as fh:
            head = fh.read(PEEK)
    except COMPRESSION_FAULTS:
        head = b""  # a fault in the first block: read as JSON lines, which reports it as the file's fault
    text = head.removeprefix(BOM).lstrip()
    if text.startswith(b"["):
        return SourceFile(path, compressed, "json_array")
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            return SourceFile(path, compressed, "json_document")  # one object over many lines
    return SourceFile(path, compressed, "jsonl")


def _fault(exc: BaseException, after: int) -> Rejected:
    reason = "truncated_file" if isinstance(exc, EOFError) else "corrupt_file"
    what = "ends before its compressed stream does" if reason == "truncated_file" else f"is corrupt ({type(exc).__name__}: {exc})"
    return Rejected(reason, f"file {what}; the {after} record(s) before the fault were kept, the rest is lost")


def decode_json(line: bytes) -> Any:
    """orjson, falling back to the standard parser for what orjson refuses but JSON producers emit
    (NaN, Infinity): those values become null instead of losing the record."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line, parse_constant=lambda _: None)


def _jsonl(sf: SourceFile) -> Iterator[tuple[int, Any, Any]]:
    line_no, seen = 0, 0
    try:
        with _open(sf.path, sf.compressed) as fh:
            for line_no, line in enumerate(fh, start=1):
                if line_no == 1:
                    line = line.removeprefix(BOM)
                if not line.strip():
                    continue
                seen += 1
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield line_no, line, Rejected("non_utf8", f"line is not valid UTF-8 ({e.reason} at byte {e.start})")
                    continue
                try:
                    yield line_no, line, decode_json(line)
                except ValueError as e:
                    yield line_no, line, Rejected("invalid_json", str(e)[:200])
    except COMPRESSION_FAULTS as e:
        yield line_no + 1, b"", _fault(e, seen)


def _json_array(sf: SourceFile) -> Iterator[tuple[int, Any, Any]]:
    n = 0
    try:
        with _open(sf.path, sf.compressed) as fh:
            # Numbered by position in the array (1-based): a JSON array has no meaningful lines.
            for n, obj in enumerate(ijson.items(fh, "item", use_float=True), start=1):
                yield n, obj, obj
    except COMPRESSION_FAULTS as e:
        yield n + 1, b"", _fault(e, n)
    except (ijson.JSONError, ValueError) as e:
        yield n + 1, b"", Rejected("corrupt_file", f"JSON array is malformed after record {n} ({str(e)[:120]}); records before it kept")


def _json_document(sf: SourceFile) -> Iterator[tuple[int, Any, Any]]:
    try:
        with _open(sf.path, sf.compressed) as fh:
            data = fh.read().removeprefix(BOM)
    except COMPRESSION_FAULTS as e:
        yield 1, b"", _fault(e, 0)
        return
    try:
        yield 1, data[:2000], decode_json(data)
    except ValueError as e:
        yield 1, data[:2000], Rejected("invalid_json", f"JSON document does not parse: {str(e)[:200]}")


def _csv(sf: SourceFile) -> Iterator[tuple[int, Any, Any]]:
    """Streamed; bytes that are not UTF-8 make their own row `non_utf8`, not the whole file."""
    seen = 0
    line_no = 1
    try:
        with _open(sf.path, sf.compressed) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")  # type: ignore[arg-type]
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                return
            start = reader.line_num + 1
            for row in reader:
                line_no, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                seen += 1
                joined = ",".join(row)
                if any("\udc80" <= ch <= "\udcff" for ch in joined):
                    yield line_no, joined.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), Rejected(
                        "non_utf8", "row has bytes that are not valid UTF-8")
                    continue
                if len(row) != len(header):
                    yield line_no, joined, Rejected("malformed_row", f"row has {len(row)} fields, header has {len(header)}")
                    continue
                yield line_no, joined, dict(zip(header, row, strict=True))
    except COMPRESSION_FAULTS as e:
        yield line_no + 1, "", _fault(e, seen)
    except csv.Error as e:
        yield line_no + 1, "", Rejected("corrupt_file", f"CSV cannot be parsed past this row ({e}); rows before it kept")


def _parquet(sf: SourceFile, batch_rows: int) -> Iterator[tuple[int, Any, Any]]:
    try:
        parquet = pq.ParquetFile(sf.path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad footer
        yield 1, b"", Rejected("corrupt_file", f"Parquet file cannot be opened ({type(e).__name__}: {str(e)[:160]})")
        return
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec, rec
    except Exception as e:  # noqa: BLE001
        yield row + 1, b"", Rejected("corrupt_file", f"Parquet data is corrupt after row {row} ({type(e).__name__}); rows before it kept")


def iter_records(sf: SourceFile, batch_rows: int = 50_000) -> Iterator[tuple[int, Any, Any]]:
    """(position, raw excerpt source, decoded record or Rejected) for every record of the file."""
    if sf.shape == "jsonl":
        return _jsonl(sf)
    if sf.shape == "json_array":
        return _json_array(sf)
    if sf.shape == "json_document":
        return _json_document(sf)
    if sf.shape == "csv":
        return _csv(sf)
    return _parquet(sf, batch_rows)


def count_records(sf: SourceFile) -> int:
    """Records in the file by its detected shape, counted without the record parser (raw lines, array
    items, CSV rows, Parquet row counts), plus one for a file-level fault: the reconciliation's side."""
    if sf.shape == "parquet":
        try:
            return pq.ParquetFile(sf.path).metadata.num_rows
        except Exception:  # noqa: BLE001
            return 1
    if sf.shape == "json_document":
        return 1
    n = 0
    try:
        with _open(sf.path, sf.compressed) as fh:
            if sf.shape == "json_array":
                items: Iterator[Any] = ijson.items(fh, "item", use_float=True)
            elif sf.shape == "csv":
                rows = csv.reader(io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline=""))  # type: ignore[arg-type]
                next(rows, None)
                items = (row for row in rows if any(c.strip() for c in row))
            else:
                items = (line for line in fh if line.removeprefix(BOM).strip())
            for _ in items:
                n += 1
    except (*COMPRESSION_FAULTS, ijson.JSONError, ValueError, csv.Error):
        n += 1
    return n
