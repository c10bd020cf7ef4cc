"""File-drop source: CSV and JSON-lines files that appear in a folder become events.

The nightly export many agencies still send. Each file is processed exactly once, across
restarts and crashes:

1. **Claim.** A file in `folder` matching `patterns` (not a dotfile, untouched for
   `min_age_seconds`) is renamed into `folder/.processing/`, an atomic step, so two
   connectors on one folder never take the same file. Its SHA-256 is taken then.
2. **Read.** Rows are mapped with the connector's field mapping and published in
   batches. The position is `{file, sha256, line, done}`: a restart resumes after the
   last committed line. Event ids derive from the file's digest and the line, so rows
   replayed after a crash are recognised as duplicates.
3. **Finish.** After the last row's position is committed the file moves to `done/`, or
   to `failed/` when any row was rejected or the file could not be read at all, next to
   a report `<name>.report.json`: rows read, rows published, and each rejected row's line
   number and reasons (field path and problem, never the value).

Rows that fail are also in the `_connect.dead_letters` topic with the same reasons.

Two kinds of file are refused whole, to `failed/` with a report saying why, before any
row is read or published, and the connector goes on with the next file:

- **A symbolic link** (or anything that is not a regular file at the moment it is
  opened): links are never followed, so a link to a file outside the folder is never
  read. Files are opened with `O_NOFOLLOW`, so a link swapped in after the check is not
  followed either.
- **A name too long to extend**: a file's report is `<name>.report.json`, written
  through a temporary `.<name>.report.json.tmp`, and a file arriving twice becomes
  `<name>-2`. A name longer than the file system's limit (255 bytes on most) less
  24 bytes (`drop_files.NAME_RESERVE`) is refused, and moved under a shortened name
  (`<start of the name>~<digest>.csv`) whose report names the original.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connectors.base import (
    ConnectorContext,
    FieldProblem,
    Position,
    RecordOutcome,
    Rejected,
    SourceConfig,
    SourceConnector,
    SourceRecord,
)
from connectors.drop_files import (
    LINK_REFUSED,
    REPORT,
    free_name,
    is_file_or_link,
    name_limit,
    open_text,
    refusal,
    sha256,
    shortened,
)
from connectors.errors import FatalConnectorError, RetriableConnectorError
from connectors.mapping import FieldMapping, load_mapping

PROCESSING = ".processing"
DONE = "done"
FAILED = "failed"


class FileDropConfig(SourceConfig):
    """Settings of a file-drop source."""

    type: Literal["file_drop"] = "file_drop"
    folder: Path
    """Where files are dropped. `.processing/`, `done/` and `failed/` are created in it."""
    mapping: Path | dict[str, Any]
    """A mapping file (YAML, see `connectors.mapping`) or the mapping inline."""
    patterns: list[str] = ["*.csv", "*.jsonl", "*.ndjson"]
    """Which file names to take (glob patterns)."""
    format: Literal["auto", "csv", "jsonl"] = "auto"
    """`auto` reads `.jsonl`/`.ndjson` as JSON lines and anything else as CSV."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    min_age_seconds: float = Field(default=2.0, ge=0)
    """Leave files younger than this alone: they may still be being written. Writers
    that write to a dotfile and rename it into the folder need no wait."""
    batch_size: int = Field(default=500, ge=1, le=10_000)


class _Rows:
    """Rows of one claimed file, from a given line on, with one row of look-ahead so the
    last row can be marked as the file's end."""

    def __init__(self, rows: Iterator[tuple[int, Any]]) -> None:
        self._rows = rows
        self._next: tuple[int, Any] | None = next(rows, None)

    def take(self) -> tuple[int, Any, bool] | None:
        """(line, row, is_last) or None when the file is exhausted."""
        current = self._next
        if current is None:
            return None
        self._next = next(self._rows, None)
        return current[0], current[1], self._next is None


class FileDropSource(SourceConnector[FileDropConfig]):
    """Publishes the rows of files dropped in a folder, one file at a time."""

    config_model = FileDropConfig

    def __init__(self, config: FileDropConfig) -> None:
        super().__init__(config)
        self._mapping: FieldMapping | None = None
        self._context: ConnectorContext | None = None
        self._file: Path | None = None
        self._digest = ""
        self._rows: _Rows | None = None
        self._dead_letters_from = 0
        self._handle: io.TextIOWrapper | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, context: ConnectorContext) -> None:
        self._context = context
        mapping = self.config.mapping
        self._mapping = load_mapping(mapping if isinstance(mapping, dict) else Path(mapping))
        folder = self.config.folder
        if not folder.is_dir():
            raise FatalConnectorError(f"file drop folder {folder} does not exist; create it "
                                      "or fix 'folder'")
        for sub in (PROCESSING, DONE, FAILED):
            if (folder / sub).is_symlink():
                raise FatalConnectorError(f"{folder / sub} is a symbolic link; it must be a "
                                          "folder of its own")
            (folder / sub).mkdir(exist_ok=True)
        claimed = sorted(p for p in (folder / PROCESSING).iterdir()
                         if is_file_or_link(p) and not p.name.endswith(REPORT))
        if claimed:
            self._resume(claimed[0], context.offset)

    def stop(self) -> None:
        self._close_file()

    # -- reading --------------------------------------------------------------------------

    def poll(self) -> Sequence[SourceRecord | Rejected]:
        while self._file is None:  # a file refused whole is finished as it is claimed
            if not self._claim_next():
                return []
        assert self._rows is not None and self._file is not None and self._mapping
        batch: list[SourceRecord | Rejected] = []
        while len(batch) < self.config.batch_size:
            taken = self._rows.take()
            if taken is None:
                break
            line, row, last = taken
            batch.append(self._record(line, row, last))
            if last:
                break
        if not batch:  # a file with no rows at all
            self._finish(self._file, error=None)
        return batch

    def _record(self, line: int, row: Any, last: bool) -> SourceRecord | Rejected:
        assert self._file is not None and self._mapping is not None
        position: Position = {"file": self._file.name, "sha256": self._digest, "line": line,
                              "done": last, "dead_letters_from": self._dead_letters_from}
        source_id = f"{self._digest}:{line}"
        reference = f"{self._file.name} line {line}"
        event_type = self._mapping.event_type
        if isinstance(row, tuple):  # a problem found while reading the row
            return Rejected(position, (row,), event_type, source_id, reference)
        mapped = self._mapping.apply(row)
        if mapped.event is None:
            return Rejected(position, mapped.problems, event_type, source_id, reference)
        return SourceRecord(event_type, mapped.event, position, source_id, reference)

    def commit(self, position: Position, outcomes: Sequence[RecordOutcome]) -> None:
        if position.get("done") and self._file is not None \
                and position.get("file") == self._file.name:
            self._finish(self._file, error=None)

    # -- claiming and resuming ------------------------------------------------------------

    def _claim_next(self) -> bool:
        folder = self.config.folder
        now = time.time()
        try:
            candidates = sorted(
                p for p in folder.iterdir()
                if is_file_or_link(p) and not p.name.startswith(".")
                and any(p.match(pattern) for pattern in self.config.patterns)
            )
        except OSError as exc:
            raise RetriableConnectorError(f"cannot list {folder}: {exc.strerror}") from exc
        for path in candidates:
            try:
                if now - path.lstat().st_mtime < self.config.min_age_seconds:
                    continue
                target = folder / PROCESSING / path.name
                if os.path.lexists(target):
                    continue
                os.rename(path, target)
            except FileNotFoundError:
                continue  # another connector claimed it first
            self._open(target, after_line=0, dead_letters_from=self._dead_letter_end())
            return True
        return False

    def _resume(self, path: Path, offset: Position | None) -> None:
        if self._refusal(path) is not None:
            self._open(path, after_line=0, dead_letters_from=self._dead_letter_end())
            return
        digest = sha256(path)
        if offset and offset.get("file") == path.name and offset.get("sha256") == digest:
            if offset.get("done"):
                # The last batch was committed but the file not yet moved: finish it.
                self._file, self._digest = path, digest
                self._dead_letters_from = int(offset.get("dead_letters_from", 0))
                self._finish(path, error=None)
                return
            self._open(path, after_line=int(offset["line"]),
                       dead_letters_from=int(offset.get("dead_letters_from", 0)))
        else:
            self._open(path, after_line=0, dead_letters_from=self._dead_letter_end())

    def _open(self, path: Path, after_line: int, dead_letters_from: int) -> None:
        self._dead_letters_from = dead_letters_from
        refused = self._refusal(path)
        if refused is not None:   # refused unread: no digest, nothing published
            self._file, self._digest = path, ""
            self._finish(path, error=refused)
            return
        try:
            self._file, self._digest = path, sha256(path)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise RetriableConnectorError(f"cannot read {path.name}: {exc.strerror}"
                                              ) from exc
            self._file, self._digest = path, ""
            self._finish(path, error=LINK_REFUSED)
            return
        error = self._check_readable(path)
        if error is not None:
            self._finish(path, error=error)
            return
        self._handle = open_text(path, self.config.encoding)
        rows = self._read_jsonl(self._handle) if self._is_jsonl(path) \
            else self._read_csv(self._handle)
        self._rows = _Rows((line, row) for line, row in rows if line > after_line)

    def _refusal(self, path: Path) -> str | None:
        try:
            return refusal(path, self.config.folder)
        except OSError as exc:
            raise RetriableConnectorError(f"cannot look at {path.name}: {exc.strerror}"
                                          ) from exc

    def _check_readable(self, path: Path) -> str | None:
        """Why the whole file cannot be read, or None. Checked before any row is
        published, so a file is either read or refused whole."""
        try:
            with open_text(path, self.config.encoding) as handle:
                while handle.read(1 << 20):
                    pass
                if self._is_jsonl(path):
                    return None
                handle.seek(0)
                header = next(csv.reader(handle, delimiter=self.config.delimiter), None)
        except UnicodeDecodeError:
            return f"the file is not {self.config.encoding} text"
        except csv.Error:
            return "the header row is not valid CSV"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return LINK_REFUSED
            raise RetriableConnectorError(f"cannot read {path.name}: {exc.strerror}") from exc
        if not header or not any(h.strip() for h in header):
            return "the file has no header row"
        names = [h.strip() for h in header]
        if len(set(names)) != len(names):
            return "the header row names a column twice"
        return None

    def _is_jsonl(self, path: Path) -> bool:
        if self.config.format != "auto":
            return self.config.format == "jsonl"
        return path.suffix.lower() in (".jsonl", ".ndjson")

    def _read_csv(self, handle: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
        reader = csv.reader(handle, delimiter=self.config.delimiter)
        header = [h.strip() for h in next(reader)]
        while True:
            # A row's line is where it starts; a quoted value may span several lines.
            line = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield line, ("<row>", "the row is not valid CSV")
                continue
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(header):
                yield line, ("<row>", "the row has more values than the header has columns")
                continue
            yield line, dict(zip(header, values, strict=False))

    def _read_jsonl(self, handle: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                doc = json.loads(text)
            except json.JSONDecodeError:
                yield line, ("<line>", "not valid JSON")
                continue
            if not isinstance(doc, dict):
                yield line, ("<line>", "expected a JSON object")
                continue
            yield line, doc

    # -- finishing ------------------------------------------------------------------------

    def _finish(self, path: Path, error: str | None) -> None:
        self._close_file()
        rejected = self._rejected_rows(path.name, self._digest)
        failed = error is not None or bool(rejected)
        target_dir = self.config.folder / (FAILED if failed else DONE)
        limit = name_limit(self.config.folder)
        target = free_name(target_dir, shortened(path.name, limit), limit)
        rows = self._rows_read(path, error)
        report = {
            "file": path.name, "sha256": self._digest or None,
            "connector": self.config.name,
            "outcome": "failed" if failed else "done", "error": error,
            "rows": rows, "published": max(0, rows - len(rejected)),
            "rejected": rejected,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        report_path = target_dir / f"{target.name}{REPORT}"
        temp = report_path.with_name(f".{report_path.name}.tmp")
        temp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, report_path)
        os.rename(path, target)
        if self._context is not None:
            self._context.log.info("file %s finished: %s, %d rows, %d rejected", path.name,
                                   report["outcome"], rows, len(rejected))
        self._file, self._rows, self._digest = None, None, ""

    def _rows_read(self, path: Path, error: str | None) -> int:
        if error is not None:
            return 0
        with open_text(path, self.config.encoding) as handle:
            rows = self._read_jsonl(handle) if self._is_jsonl(path) else self._read_csv(handle)
            return sum(1 for _ in rows)

    def _rejected_rows(self, name: str, digest: str) -> list[dict[str, Any]]:
        """The file's rejected rows, from the dead-letter topic (which survives crashes,
        unlike anything this instance could hold in memory)."""
        topic = self._context.dead_letters if self._context else None
        if topic is None:
            return []
        by_line: dict[int, list[FieldProblem]] = {}
        for letter in topic.read(self.config.name, after=self._dead_letters_from):
            position = letter.position or {}
            if position.get("file") == name and position.get("sha256") == digest:
                by_line.setdefault(int(position["line"]), list(letter.problems))
        return [{"line": line, "problems": [{"path": p, "problem": m} for p, m in problems]}
                for line, problems in sorted(by_line.items())]

    def _dead_letter_end(self) -> int:
        topic = self._context.dead_letters if self._context else None
        return topic.end() if topic is not None else 0

    def _close_file(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
