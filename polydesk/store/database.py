"""The state database's connection: one writer, every write its own transaction, and the
boundary where sqlite3's and the file system's errors become StoreError.

The tables' own methods (``sessions``, ``audit``, ``access``) build on this; ``Store`` is
them all together.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polydesk.core.model import StoreError
from polydesk.store.schema import migrate
from polydesk.store.space import Priority, Reserve

Statement = tuple[str, tuple[Any, ...]]


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    """sqlite3 and OSError become StoreError naming the database or its directory."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"state database {path}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"state directory {path.parent}: {exc.strerror or exc}") from exc


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        with translated(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            # A short WAL, checkpointed often and then written over from its start, needs no
            # new blocks once it has its size: on a full disk the reserve pays only for rows.
            self._db.execute("PRAGMA wal_autocheckpoint=64")
            migrate(self._db)
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise StoreError(f"state database {path} is damaged: {verdict}")
        self._reserve = Reserve(path.parent)

    def reserve_left(self) -> int:
        return self._reserve.left()

    def ensure_space(self, priority: Priority = Priority.NORMAL) -> None:
        """Refuse, before anything is done, when the state directory is (nearly) full, unless
        ``priority`` may count on the reserve (see Priority)."""
        self._reserve.check(priority)

    def close(self) -> None:
        self._db.close()

    # for the small stores beside this one (manager/station_book.py, groups.py): their SQL, this connection

    def write(self, *statements: Statement) -> sqlite3.Cursor:
        """Run ``statements`` in one transaction; return the last cursor (StoreError when it
        cannot be saved)."""
        with translated(self.path):
            while True:
                try:
                    return self._attempt(statements)
                except sqlite3.OperationalError as exc:
                    # The file system is full: give back a chunk of the reserve and try again.
                    if "full" not in str(exc) or not self._reserve.give_back():
                        raise

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with translated(self.path):
            return list(self._db.execute(sql, params).fetchall())

    def read_one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with translated(self.path):
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
            return row

    def _attempt(self, statements: tuple[Statement, ...]) -> sqlite3.Cursor:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                cursor = self._db.execute(sql, params)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return cursor
