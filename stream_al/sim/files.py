"""Labelled samples from a file of your own: CSV, JSON Lines or Parquet.

Types are inferred once, over the whole file, and reported: a column whose values all
read as numbers becomes numeric (a CSV holds only text, and a number kept as text would
silently become a category), ``true``/``false`` become booleans, the rest stay strings.
An empty cell or a JSON ``null`` is a missing value: the feature is left out of that
sample, as river's models expect. A column that is numeric except for a few values is
read as numeric, those values as missing, and the report says so.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> path = folder / "orders.csv"
>>> _ = path.write_text("amount,country,returning,y\\n3.5,NL,true,ok\\n,DE,false,fraud\\n")
>>> data = read_examples(path, target="y")
>>> for example in data.examples:
...     print(example.id, example.features, example.label)
orders-0 {'amount': 3.5, 'country': 'NL', 'returning': True} ok
orders-1 {'country': 'DE', 'returning': False} fraud
>>> print(data.report())
orders.csv: 2 samples, target y (2 classes), 3 features
  amount     number   1 missing
  country    string
  returning  boolean
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from river import stream as river_stream

from stream_al.core.types import FeatureValue
from stream_al.schemas import class_label
from stream_al.sim.datasets import Example

ColumnKind = Literal["number", "boolean", "string"]
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
#: A column is numeric when at least this share of its present values are numbers.
NUMERIC_SHARE = 0.95
_BOOLEANS = {"true": True, "false": False}


class DataFileError(ValueError):
    """A data file that cannot be read as labelled samples, and why."""


@dataclass
class ColumnReport:
    """What a column was read as."""

    name: str
    kind: ColumnKind
    missing: int = 0
    #: Values that did not fit the column's kind and were read as missing.
    odd_values: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        parts = [f"{self.name:<10} {self.kind:<8}"]
        if self.missing:
            parts.append(f"{self.missing} missing")
        if self.odd_values:
            shown = ", ".join(f"{v!r} x{n}" for v, n in self.odd_values.most_common(3))
            total = sum(self.odd_values.values())
            parts.append(f"{total} values not numbers, read as missing: {shown}")
        return " ".join(parts).rstrip()


@dataclass
class FileData:
    """The examples of a file, and how its columns were read."""

    path: Path
    target: str | None
    examples: list[Example]
    columns: list[ColumnReport]

    def report(self) -> str:
        classes = len({example.label for example in self.examples})
        target = f"target {self.target} ({classes} classes)" if self.target else "no target"
        lines = [
            f"{self.path.name}: {len(self.examples)} samples, {target}, "
            f"{len(self.columns)} features"
        ]
        lines += [f"  {column.describe()}" for column in self.columns]
        return "\n".join(lines)


def read_examples(
    path: Path, target: str | None, id_column: str | None = None, limit: int | None = None
) -> FileData:
    """Read ``path`` into examples, with ``target`` as the label (None: unlabelled).

    Ids come from ``id_column`` when given, else ``<file stem>-<row index>``. Raises
    ``DataFileError`` naming what is wrong (unknown format, missing column, no rows).
    """
    if not path.is_file():
        raise DataFileError(f"data file {path} does not exist")
    rows = list(_rows(path, limit))
    if not rows:
        raise DataFileError(f"data file {path} holds no rows")
    names = list(dict.fromkeys(name for row in rows for name in row))
    for role, name in (("--target", target), ("--id", id_column)):
        if name is not None and name not in names:
            raise DataFileError(
                f"{role} {name!r} is not a column of {path.name}; its columns: {', '.join(names)}"
            )
    feature_names = [name for name in names if name not in (target, id_column)]
    columns = [_infer(name, [row.get(name) for row in rows]) for name in feature_names]
    examples = []
    for index, row in enumerate(rows):
        raw_label = row.get(target) if target is not None else None
        if target is not None and _missing(raw_label):
            raise DataFileError(f"{path.name}, row {index + 1}: the target {target!r} is empty")
        raw_id = row.get(id_column) if id_column is not None else None
        if id_column is not None and _missing(raw_id):
            raise DataFileError(f"{path.name}, row {index + 1}: the id {id_column!r} is empty")
        features: dict[str, FeatureValue] = {}
        for column in columns:
            value = _convert(row.get(column.name), column.kind)
            if value is not None:
                features[column.name] = value
        example_id = str(raw_id) if raw_id is not None else f"{path.stem}-{index}"
        label = class_label(raw_label) if raw_label is not None else ""
        examples.append(Example(example_id, features, label))
    ids = Counter(example.id for example in examples)
    if duplicated := [i for i, n in ids.items() if n > 1][:3]:
        raise DataFileError(f"{path.name}: ids are not unique ({', '.join(duplicated)} ...)")
    return FileData(path, target, examples, columns)


def _rows(path: Path, limit: int | None) -> Iterator[dict[str, Any]]:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise DataFileError(f"{path.name}: unknown file type {path.suffix!r}; known: {known}")
    rows: Iterator[dict[str, Any]]
    if kind == "csv":
        # river's reader, without converters: every value is text, typed below.
        rows = ({str(k): v for k, v in x.items()} for x, _ in river_stream.iter_csv(path))
    elif kind == "jsonl":
        rows = _json_lines(path)
    else:
        rows = _parquet(path)
    for index, row in enumerate(rows):
        if limit is not None and index >= limit:
            return
        yield row


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{path.name}, line {number}: not JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise DataFileError(f"{path.name}, line {number}: not a JSON object")
            yield row


def _parquet(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataFileError(
            "reading Parquet needs pyarrow: pip install 'stream_al[parquet]'"
        ) from None
    for batch in parquet.ParquetFile(path).iter_batches():
        yield from batch.to_pylist()


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().lower())
    return None


def _infer(name: str, values: list[Any]) -> ColumnReport:
    present = [value for value in values if not _missing(value)]
    missing = len(values) - len(present)
    if present and all(_boolean(value) is not None for value in present):
        return ColumnReport(name, "boolean", missing)
    odd = [value for value in present if _number(value) is None]
    if present and len(odd) <= (1 - NUMERIC_SHARE) * len(present):
        odd_values = Counter(str(value) for value in odd)
        return ColumnReport(name, "number", missing, odd_values)
    return ColumnReport(name, "string", missing)


def _convert(value: Any, kind: ColumnKind) -> FeatureValue | None:
    if _missing(value):
        return None
    if kind == "number":
        return _number(value)
    if kind == "boolean":
        return _boolean(value)
    return value if isinstance(value, str) else json.dumps(value)
