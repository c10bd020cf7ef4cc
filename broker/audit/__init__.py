"""The tamper-evident audit log: hash-chained records, signed checkpoints, verification,
queries, the accounting of disclosures, and exports.

The broker writes an `AuditEntry` for every policy decision, refused publish, and policy
or consent change, naming the person only by a `SubjectPseudonymizer` pseudonym. The
ports (`broker.audit.store`): `AuditAppender`, `CheckpointLog`, `AuditReader`,
`AuditVerifier`, and `AuditStore` for all but the last.
"""

from broker.audit.chain import SqliteAuditVerifier, VerifyReport, verify
from broker.audit.checkpoints import (
    CheckpointSigner,
    export_checkpoints,
    load_public_key,
    public_key_id,
)
from broker.audit.disclosures import Disclosure
from broker.audit.errors import (
    AuditEntryError,
    AuditFormatError,
    AuditKeyError,
    AuditQueryError,
    AuditStoreNotFoundError,
    AuditStoreUnavailableError,
)
from broker.audit.export import export_csv, export_jsonl, export_records
from broker.audit.paths import (
    audit_db_path,
    pseudonym_key_path,
    signing_key_path,
    signing_public_key_path,
)
from broker.audit.pseudonym import (
    SubjectPseudonymizer,
    load_or_create_pseudonym_key,
    load_pseudonym_key,
)
from broker.audit.records import (
    AuditEntry,
    AuditKind,
    AuditRecord,
    CanonicalDetail,
    Checkpoint,
)
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import (
    AuditAppender,
    AuditCount,
    AuditFilter,
    AuditPage,
    AuditReader,
    AuditStore,
    AuditVerifier,
    CheckpointLog,
)

__all__ = [
    "AuditAppender",
    "AuditCount",
    "AuditEntry",
    "AuditEntryError",
    "AuditFilter",
    "AuditFormatError",
    "AuditKeyError",
    "AuditKind",
    "AuditPage",
    "AuditQueryError",
    "AuditReader",
    "AuditRecord",
    "AuditStore",
    "AuditStoreNotFoundError",
    "AuditStoreUnavailableError",
    "AuditVerifier",
    "CanonicalDetail",
    "Checkpoint",
    "CheckpointLog",
    "CheckpointSigner",
    "Disclosure",
    "SqliteAuditStore",
    "SqliteAuditVerifier",
    "SubjectPseudonymizer",
    "VerifyReport",
    "audit_db_path",
    "export_checkpoints",
    "export_csv",
    "export_jsonl",
    "export_records",
    "load_or_create_pseudonym_key",
    "load_pseudonym_key",
    "load_public_key",
    "pseudonym_key_path",
    "public_key_id",
    "signing_key_path",
    "signing_public_key_path",
    "verify",
]
