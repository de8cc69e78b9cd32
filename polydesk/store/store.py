"""SQLite state: live sessions, ended-session history, the audit log, and who may come in.

One connection, one writer (the daemon). Every write is its own transaction, so a daemon
killed at any point leaves the database consistent. Errors from sqlite3 are translated into
StoreError at this boundary (``database``).

``Store`` is the tables' methods together, on one connection:

- ``database``: the connection, transactions, the error boundary, the space reserve;
- ``schema``: the migrations (and the audit log's append-only triggers);
- ``space``: the reserve kept for block, log-off and disconnect on a full disk;
- ``sessions``: live and ended sessions, session ids, station connections;
- ``audit``: the audit log;
- ``access``: tokens, web sign-ins, failed log-ons, the monitoring notice seen.
"""

from __future__ import annotations

from polydesk.store.access import AccessTables
from polydesk.store.audit import AuditLog
from polydesk.store.sessions import SessionTables
from polydesk.store.space import Priority, essential

__all__ = ["Priority", "Store", "essential"]


class Store(SessionTables, AuditLog, AccessTables):
    """The state database (see the module's text)."""
