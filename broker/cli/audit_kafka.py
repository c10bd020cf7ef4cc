"""The Kafka side of `handoff audit`: finding the audit log in Kafka, and reading it.

Where the log is comes from `--kafka` and `--topic-prefix`, over the settings (`--config`
or `HANDOFF_*`), whose `kafka` section also supplies security options; without
`--kafka`, the settings select Kafka only when `log.backend` is `kafka`. Exit codes as
for the embedded log: 1 for a failed verification or a cluster that cannot be read,
2 for usage errors (bad settings, no audit topics under the prefix).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from broker.audit.disclosures import Disclosure
from broker.audit.errors import AuditFormatError
from broker.audit.kafka_records import AUDIT_TOPIC, CHECKPOINTS_TOPIC, read_checkpoint
from broker.audit.kafka_store import KafkaAuditStore
from broker.audit.records import Checkpoint
from broker.audit.store import AuditFilter
from broker.cli.audit_common import failure, usage_error
from broker.config import KafkaSettings, load_settings
from broker.errors import AuditError, ConfigError, LogError, UnknownTopicError
from broker.log.port import EventLog


def _settings(config: Path | None) -> Any:
    try:
        return load_settings(config)
    except ConfigError as exc:
        usage_error(str(exc))


def kafka_settings(
    bootstrap: str | None, topic_prefix: str | None, config: Path | None
) -> KafkaSettings | None:
    """Where the audit log is in Kafka, or None when the embedded store is meant."""
    settings = _settings(config)
    if bootstrap is None and settings.log.backend != "kafka":
        return None
    update: dict[str, str] = {}
    if bootstrap is not None:
        update["bootstrap_servers"] = bootstrap
    if topic_prefix is not None:
        update["topic_prefix"] = topic_prefix
    found: KafkaSettings = settings.kafka.model_copy(update=update)
    return found


def settings_data_dir(config: Path | None) -> Path:
    """The data directory the settings name (when no --data was given)."""
    data: Path = _settings(config).data_dir
    return data


def open_log(settings: KafkaSettings) -> EventLog:
    from broker.log.kafka import KafkaEventLog

    try:
        return KafkaEventLog.from_settings(settings, client_id="handoff-audit")
    except ConfigError as exc:
        usage_error(str(exc))
    except LogError as exc:
        failure(f"cannot reach Kafka: {exc}")


def read_exported_checkpoints(path: Path) -> list[tuple[Checkpoint, str | None]]:
    """Checkpoints exported by `handoff audit checkpoints --kafka` (JSON lines)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            chain = document.get("chain")
            found.append((Checkpoint.from_dict(document),
                          chain if isinstance(chain, str) else None))
        except (ValueError, AttributeError, AuditFormatError) as exc:
            usage_error(f"{path}:{number}: not an exported checkpoint ({exc})")
    return found


def export_checkpoints(settings: KafkaSettings) -> list[dict[str, Any]]:
    """Every checkpoint in Kafka as a JSON-ready dict (with `chain` for imported ones)."""
    event_log = open_log(settings)
    exported = []
    try:
        offset, end = 0, event_log.end_offset(CHECKPOINTS_TOPIC, 0)
        while offset < end:
            records = event_log.read(CHECKPOINTS_TOPIC, 0, offset, 1000)
            if not records:
                break
            for record in records:
                checkpoint, chain = read_checkpoint(record.offset + 1, record.value)
                exported.append({**checkpoint.to_dict(),
                                 **({"chain": chain} if chain is not None else {})})
            offset = records[-1].offset + 1
    except UnknownTopicError:
        usage_error(f"no audit log in Kafka at {settings.bootstrap_servers} under the topic "
                     f"prefix {settings.topic_prefix!r}")
    except (AuditError, LogError) as exc:
        failure(f"cannot read the checkpoints in Kafka: {exc}")
    finally:
        event_log.close()
    return exported


def disclosures(
    settings: KafkaSettings, index: Path | None, where: AuditFilter
) -> list[Disclosure]:
    """The accounting of disclosures for one subject, from the audit log in Kafka, through
    `index` (kept) or a temporary index (built from the whole log, then removed)."""
    event_log = open_log(settings)
    try:
        if AUDIT_TOPIC not in event_log.topics():
            usage_error(f"no audit log in Kafka at {settings.bootstrap_servers} under the "
                         f"topic prefix {settings.topic_prefix!r}")
        with tempfile.TemporaryDirectory(prefix="handoff-audit-") as scratch:
            path = index if index is not None else Path(scratch) / "audit-index.db"
            with KafkaAuditStore(event_log, path, writer="audit-cli") as store:
                return store.disclosures(where)
    except (AuditError, LogError) as exc:
        failure(f"cannot read the audit log in Kafka: {exc}")
    finally:
        event_log.close()
