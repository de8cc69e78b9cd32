"""The CLI's way to the daemon: HTTP over the Unix socket, or over TCP with a token; exit codes.

Locally the daemon knows the caller from the socket's peer credentials; ``--server URL --token T``
reaches a daemon elsewhere. Every command asks through ``connect()``, which uses the options given
before the command (``polydesk --server URL sessions``).
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import httpx
import typer

from polydesk.config.settings import DEFAULT_RUNTIME_DIR
from polydesk.core.i18n import _

OK, SOME_FAILED, USAGE, NOT_PERMITTED, UNREACHABLE = 0, 1, 2, 3, 4


class Client:
    def __init__(self, server: str | None, token: str | None, socket: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if server:
            self.where = server
            self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=600)
        else:
            path = socket or os.path.join(os.environ.get("POLYDESK_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR,
                                          "api.sock")
            self.where = path
            transport = httpx.HTTPTransport(uds=path)
            self.http = httpx.Client(transport=transport, base_url="http://polydesk", headers=headers,
                                     timeout=600)

    def exists(self, path: str) -> bool:
        try:
            return self.http.get(f"/api/v1{path}").status_code != 404
        except httpx.HTTPError:
            return True  # unknown: keep waiting

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"/api/v1{path}", **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError, PermissionError) as exc:
            fail(UNREACHABLE, _("cannot reach the polydesk daemon at {where}: {error}").format(
                where=self.where, error=exc))
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = error["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            code = {400: USAGE, 401: NOT_PERMITTED, 403: NOT_PERMITTED, 404: USAGE}.get(
                response.status_code, SOME_FAILED)
            fail(code, message)
        return response.json() if response.content else None


def fail(code: int, message: str) -> NoReturn:
    typer.echo(f"polydesk: {message}", err=True)
    raise typer.Exit(code)


_where: dict[str, str | None] = {}  # the global options, set once per run by the app's callback


def use(server: str | None, token: str | None, socket: str | None) -> None:
    """Where this run's commands reach the daemon (the options before the command)."""
    _where.update(server=server, token=token, socket=socket)


def connect() -> Client:
    return Client(_where.get("server"), _where.get("token"), _where.get("socket"))
