"""The audit log: every action, allowed or refused, appended and never changed (the table's
triggers refuse UPDATE and DELETE: ``schema``). The manager is its only writer."""

from __future__ import annotations

import json

from polydesk.core.events import AuditRecord
from polydesk.store.database import Database


class AuditLog(Database):
    def append_audit(self, record: AuditRecord) -> int:
        cursor = self.write((
            "INSERT INTO audit (time, caller, caller_uid, role, via, action, targets, allowed, "
            "results, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.time, record.caller, record.caller_uid, record.role, record.via,
             record.action, json.dumps(record.targets), int(record.allowed),
             json.dumps(record.results), json.dumps(record.detail)),
        ))
        return int(cursor.lastrowid or 0)

    def audit(self, limit: int = 100, since_seq: int = 0) -> list[AuditRecord]:
        rows = self.read(
            "SELECT seq, time, caller, caller_uid, role, via, action, targets, allowed, "
            "results, detail FROM audit WHERE seq > ? ORDER BY seq DESC LIMIT ?",
            (since_seq, limit),
        )
        return [
            AuditRecord(
                seq=row[0], time=row[1], caller=row[2], caller_uid=row[3], role=row[4], via=row[5],
                action=row[6], targets=json.loads(row[7]), allowed=bool(row[8]),
                results=json.loads(row[9]), detail=json.loads(row[10]),
            )
            for row in reversed(rows)
        ]

    def audit_counts(
        self, after_seq: int = 0
    ) -> tuple[int, list[tuple[str, bool, int]], list[tuple[str, int]]]:
        """Audit records after ``after_seq``, for the metrics: (the newest seq, entries by (action,
        allowed), logon results by status). Pass the returned seq next time to read only what is new."""
        newest_row = self.read_one("SELECT coalesce(max(seq), 0) FROM audit")
        newest = newest_row[0] if newest_row else 0
        entries = self.read(
            "SELECT action, allowed, count(*) FROM audit WHERE seq > ? AND seq <= ? "
            "GROUP BY action, allowed", (after_seq, newest))
        logons = self.read(
            "SELECT json_extract(r.value, '$.status'), count(*) FROM audit, json_each(audit.results) r "
            "WHERE seq > ? AND seq <= ? AND action = 'logon' GROUP BY 1", (after_seq, newest))
        return (int(newest), [(str(a), bool(ok), int(n)) for a, ok, n in entries],
                [(str(status), int(n)) for status, n in logons])
