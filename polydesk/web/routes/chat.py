"""Chat on the REST API: /api/v1/sessions/{id}/chat, /hand (and /hand/lower), /api/v1/chat/unread.

Thin calls into the manager (manager/chat.py), which checks the text, the roles, the rate and
the audit; the schema states the same rules (the length is the ``chat_max_length`` setting,
so the model is made here, with the settings).
"""

# No ``from __future__ import annotations``: the body's model is made at run time (the
# length is a setting), and FastAPI must see the class itself in ``send``'s signature.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, create_model

from polydesk.core.texts import NOT_BLANK_PATTERN
from polydesk.manager.chat import max_length
from polydesk.manager.manager import Manager
from polydesk.web.routes.api import ERRORS, SessionOut, Who, session_out


class ChatMessageOut(BaseModel):
    seq: int = Field(description="The message's number: later messages have higher ones")
    session_id: str
    time: float
    sender: str = Field(description="The user who wrote it")
    from_: Literal["student", "teacher"] = Field(alias="from", description=(
        '"student": the session\'s user; "teacher": a Dashboard user or an administrator'))
    text: str = Field(description="Plain text, to be shown as it is (never as markup)")

    model_config = ConfigDict(populate_by_name=True)


class ChatOut(BaseModel):
    session_id: str
    messages: list[ChatMessageOut]


def chat_router(manager: Manager) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    longest = max_length(manager.settings.chat_max_length)
    chat_in: Any = create_model(
        "ChatIn", __config__=ConfigDict(extra="forbid"),
        text=(str, Field(min_length=1, max_length=longest, json_schema_extra={"pattern": NOT_BLANK_PATTERN},
                         description=f"Plain text, at most {longest} characters (setting chat_max_length); "
                                     "no control character but tab and line breaks")))

    @router.get("/sessions/{session_id}/chat", response_model=ChatOut, response_model_by_alias=True,
                summary="A session's conversation (marks it read for you)")
    async def history(session_id: str, caller: Who,
                      after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> dict[str, Any]:
        messages = manager.chat_history(caller, session_id, after)
        return {"session_id": session_id, "messages": [m.to_json() for m in messages]}

    @router.post("/sessions/{session_id}/chat", response_model=ChatMessageOut, response_model_by_alias=True,
                 summary="Write in a session's conversation")
    async def send(session_id: str, body: chat_in, caller: Who) -> dict[str, Any]:
        return manager.chat_send(caller, session_id, body.text).to_json()

    @router.post("/sessions/{session_id}/hand", response_model=SessionOut,
                 summary="Raise the hand (your own session): ask the Dashboard users for help")
    async def raise_hand(session_id: str, caller: Who) -> SessionOut:
        return session_out(await manager.hand(caller, session_id, True), caller)

    @router.post("/sessions/{session_id}/hand/lower", response_model=SessionOut,
                 summary="Lower a session's hand")
    async def lower_hand(session_id: str, caller: Who) -> SessionOut:
        return session_out(await manager.hand(caller, session_id, False), caller)

    @router.get("/chat/unread", response_model=dict[str, int],
                summary="Per session you may chat with: its user's messages you have not read")
    async def unread(caller: Who) -> dict[str, int]:
        return manager.chat_unread(caller)

    return router
