"""HTTP clients for the bench, cheap enough not to be what it measures.

httpx spends about a millisecond of the bench's CPU per request; fifty API clients
then queue inside the bench's own event loop and the tail it measures is the bench's.
A request here is one write and two reads on a keep-alive connection (HTTP/1.1, only
what the daemon answers: Content-Length bodies).

``python -m bench.httpload URL PATH CLIENTS SECONDS`` (token in $POLYDESK_BENCH_TOKEN)
runs ``polling`` in a process of its own and prints the request times as JSON: the
suite runs the API clients so, away from its Dashboard's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time


class Client:
    """One keep-alive connection sending GET requests with a bearer token."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.bytes_in = 0  # everything read: status lines, headers, bodies
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body). A keep-alive connection the server
        closed meanwhile (uvicorn does after 5 idle seconds) is opened again, as browsers do."""
        if self._writer is not None:
            try:
                return await self._get(path, headers)
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return await self._get(path, headers)

    async def _get(self, path: str, headers: dict[str, str] | None) -> tuple[int, dict[str, str], bytes]:
        assert self._reader is not None and self._writer is not None
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._writer.write((f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                            f"Authorization: Bearer {self.token}\r\n{extra}\r\n").encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                fields[name.strip().lower()] = value.strip()
        body = await self._reader.readexactly(int(fields.get("content-length", "0")))
        self.bytes_in += len(head) + len(body)
        return status, fields, body

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def split_url(base_url: str) -> tuple[str, int]:
    host, _, port = base_url.removeprefix("http://").rpartition(":")
    return host, int(port)


async def polling(base_url: str, token: str, path: str, clients: int, seconds: float,
                  pause: float = 1.0) -> list[float]:
    """``clients`` connections, each: GET ``path``, then a pause of 0-``pause`` s (uniform),
    for ``seconds``; every request's time (from sending to the whole answer read). Each
    client's first request opens its connection and is not counted: the figure is a
    connected client's, not a TCP handshake's."""
    host, port = split_url(base_url)
    times: list[float] = []
    stop = time.monotonic() + seconds

    async def one(number: int) -> None:
        rng = random.Random(number)
        client = Client(host, port, token)
        try:
            await asyncio.sleep(rng.random() * pause)  # not all in the same millisecond
            await client.get(path)
            await asyncio.sleep(rng.random() * pause)
            while time.monotonic() < stop:
                started = time.perf_counter()
                status, _, _ = await client.get(path)
                times.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"GET {path}: {status}")
                await asyncio.sleep(rng.random() * pause)
        finally:
            await client.close()

    await asyncio.gather(*(one(n) for n in range(clients)))
    return times


async def polling_elsewhere(base_url: str, token: str, path: str, clients: int,
                            seconds: float) -> list[float]:
    """``polling`` in a process of its own (its event loop is then no one else's)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.httpload", base_url, path, str(clients), str(seconds),
        env={**os.environ, "POLYDESK_BENCH_TOKEN": token}, stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError("the API clients did not finish") from None
    if proc.returncode != 0:
        raise RuntimeError(f"the API clients failed ({proc.returncode})")
    times: list[float] = json.loads(out)
    return times


def main() -> None:
    base_url, path, clients, seconds = sys.argv[1:5]
    token = os.environ["POLYDESK_BENCH_TOKEN"]
    print(json.dumps(asyncio.run(polling(base_url, token, path, int(clients), float(seconds)))))


if __name__ == "__main__":
    main()
