"""Who may come in, in the state database: API tokens (kept as digests only), web sign-ins
(a cookie works only while its id is here: signing out survives a restart), failed log-on
counters (a restart must not forgive a guesser), and which version of the monitoring notice
each user dismissed."""

from __future__ import annotations

import time
from typing import Any

from polydesk.store.database import Database


class AccessTables(Database):
    # tokens

    def add_token(self, token_id: str, digest: str, user: str, created_by: str, note: str) -> None:
        self.write(("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                    (token_id, digest, user, time.time(), created_by, note)))

    def token_user(self, digest: str) -> str | None:
        row = self.read_one("SELECT user FROM tokens WHERE digest = ?", (digest,))
        return str(row[0]) if row else None

    def tokens(self) -> list[dict[str, Any]]:
        rows = self.read("SELECT id, user, created, created_by, note FROM tokens ORDER BY created")
        keys = ("id", "user", "created", "created_by", "note")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def revoke_token(self, token_id: str) -> bool:
        cursor = self.write(("DELETE FROM tokens WHERE id = ?", (token_id,)))
        return cursor.rowcount > 0

    # web sign-ins and failed log-ons

    def add_signin(self, sid: str, user: str, expires: float) -> None:
        self.write(("DELETE FROM signins WHERE expires < ?", (time.time(),)),
                   ("INSERT OR REPLACE INTO signins VALUES (?, ?, ?)", (sid, user, expires)))

    def drop_signin(self, sid: str) -> None:
        self.write(("DELETE FROM signins WHERE sid = ?", (sid,)))

    def signins(self) -> list[tuple[str, str, float]]:
        rows = self.read("SELECT sid, user, expires FROM signins WHERE expires >= ?", (time.time(),))
        return [(str(sid), str(user), float(expires)) for sid, user, expires in rows]

    # Web sign-in failures (web/signin.py); the table keeps its first name: databases in use have it.
    def put_signin_failures(self, rows: list[tuple[str, int, float]], drop: list[str]) -> None:
        if rows or drop:
            self.write(*(("INSERT OR REPLACE INTO logon_failures VALUES (?, ?, ?)", row) for row in rows),
                       *(("DELETE FROM logon_failures WHERE key = ?", (key,)) for key in drop))

    def signin_failures(self) -> list[tuple[str, int, float]]:
        rows = self.read("SELECT key, failures, last FROM logon_failures")
        return [(str(key), int(failures), float(last)) for key, failures, last in rows]

    # the monitoring notice (web/routes/privacy.py)

    def set_notice_seen(self, user: str, version: str) -> None:
        self.write(("INSERT OR REPLACE INTO notices_seen VALUES (?, ?, ?)", (user, version, time.time())))

    def notice_seen(self, user: str) -> str | None:
        row = self.read_one("SELECT version FROM notices_seen WHERE user = ?", (user,))
        return str(row[0]) if row else None
