"""Teachers' groups of students and the order of the Dashboard's cards.

A group is a named list of user names ("Maths 7B"): the Dashboard filters its
cards by one. Groups are shared by every Dashboard user and administrator of
this server, as the class lists of a lab are the school's, not one teacher's:
a substitute teacher finds the class's groups, and each change says who made
it in the audit log (action "groups"). The custom order of the cards is a
teacher's own layout: one list of user names per Dashboard user, not audited
(it changes nothing anyone else sees).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from polydesk.core import policy
from polydesk.core.model import Action, Caller, InvalidRequest, NotPermitted, UnknownName
from polydesk.manager.audit import AuditLog
from polydesk.manager.station_book import one_line
from polydesk.store.store import Store

MAX_MEMBERS = 500  # a whole school's lab list fits; a request cannot grow the database without end
MAX_GROUPS = 200


@dataclass(frozen=True)
class Group:
    name: str
    members: list[str]
    updated: float
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Groups:
    def __init__(self, store: Store, audit: AuditLog) -> None:
        self.store = store
        self.audit = audit

    def saved(self, caller: Caller) -> list[Group]:
        self._require(caller)
        return [Group(str(name), json.loads(members), float(updated), str(by)) for name, members, updated, by
                in self.store.read("SELECT name, members, updated, updated_by FROM student_groups "
                                   "ORDER BY name COLLATE NOCASE")]

    def save(self, caller: Caller, name: object, members: object) -> Group:
        """Make the group ``name`` or replace its members."""
        self._require(caller, audit_as="save", name=name)
        group_name = one_line("name", name)
        users = user_names("members", members)
        known = {g.name for g in self.saved(caller)}
        if group_name not in known and len(known) >= MAX_GROUPS:
            raise InvalidRequest(f"there are {MAX_GROUPS} groups already: delete one first")
        group = Group(group_name, users, time.time(), caller.user)
        self.store.write(("INSERT OR REPLACE INTO student_groups VALUES (?, ?, ?, ?)",
                          (group.name, json.dumps(users), group.updated, group.updated_by)))
        self._audit(caller, group.name, "saved" if group_name not in known else "changed",
                    {"members": users})
        return group

    def delete(self, caller: Caller, name: str) -> None:
        self._require(caller, audit_as="delete", name=name)
        cursor = self.store.write(("DELETE FROM student_groups WHERE name = ?", (name,)))
        if cursor.rowcount == 0:
            raise UnknownName(f"no group named {name!r}")
        self._audit(caller, name, "deleted", {})

    # the card order: the caller's own

    def order(self, caller: Caller) -> list[str]:
        self._require(caller)
        rows = self.store.read("SELECT users FROM card_orders WHERE owner = ?", (caller.user,))
        return list(json.loads(rows[0][0])) if rows else []

    def set_order(self, caller: Caller, users: object) -> list[str]:
        self._require(caller)
        order = user_names("users", users)
        self.store.write(("INSERT OR REPLACE INTO card_orders VALUES (?, ?)",
                          (caller.user, json.dumps(order))))
        return order

    # helpers

    def _require(self, caller: Caller, audit_as: str | None = None, name: object = None) -> None:
        decision = policy.may_global(caller, Action.GROUPS)
        if decision:
            return
        if audit_as is not None:  # a refused change is on the record too
            self._audit(caller, str(name)[:128], "not-permitted", {"change": audit_as}, decision.reason)
        raise NotPermitted(decision.reason)

    def _audit(self, caller: Caller, name: str, status: str, detail: dict[str, Any],
               reason: str | None = None) -> None:
        self.audit.write(caller, Action.GROUPS, [name],
                         [{"id": name, "status": status, "user": None, "reason": reason}],
                         allowed=reason is None, reason=reason, detail=detail)


def user_names(field: str, value: object) -> list[str]:
    """A list of account names, each said once, in the order given."""
    if not isinstance(value, list):
        raise InvalidRequest(f"{field}: must be a list of user names")
    if len(value) > MAX_MEMBERS:
        raise InvalidRequest(f"{field}: at most {MAX_MEMBERS} user names")
    names = [one_line(f"{field}[{i}]", item) for i, item in enumerate(value)]
    return list(dict.fromkeys(names))
