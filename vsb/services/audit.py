"""The audit batch writer service (implemented in :mod:`vsb.db.audit`)."""

from vsb.db.audit import AuditEntry, AuditWriter, AuditWriterClosed

__all__ = ["AuditEntry", "AuditWriter", "AuditWriterClosed"]
