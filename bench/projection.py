"""python -m bench.projection [--targets N] [--seconds S]: projection to N stations (issue 15).

A real daemon and real Xvnc sessions: a source session whose whole screen changes all the time
(a painter copies one of six full-screen pictures onto its root window, 25 times a second, and
marks each frame with a grey level in a 64x64 box), N target sessions, and one RFB client per
target on its own station (the bridge's WebSocket, as noVNC: Tight, DesktopSize), reading every
update and asking for the next at once. A few clients decode the box to know which frame
arrived, for the latency; one more target reads only once a second (a slow Wi-Fi client):
the others must not slow down for it.

Figures (medians over the targets), to bench/results/projection.json:

- ``projection_fps``: distinct updates a second reaching each target (and the lowest);
- ``projection_latency_p95_ms``: a frame painted on the source to its pixels at a target;
- ``projection_source_cpu_ratio_30_1``: the source Xvnc's CPU at N targets over at 1;
- ``projection_daemon_cpu_pct_per_target``: the daemon's CPU (% of one core) per target.

Run as root from the repository, after ``bash scripts/install --test``:

    PYTHONPATH=. /opt/polydesk/venv/bin/python -m bench.projection --targets 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import statistics
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from websockets.asyncio.client import ClientConnection, connect
from Xlib import X

from bench.results import RESULTS, write
from bench.rig import CLOCK_TICK, Rig, room
from polydesk.core.screen import Screen
from polydesk.system.x11.client import open_display
from tests import harness
from tests.harness import user_pids

OUT = RESULTS / "projection.json"
WIDTH, HEIGHT = 1280, 800
MARK = (1200, 600, 1264, 664)  # the frame's number, as a grey level: inside one 256-row band
LEVELS = 16
FPS = 25.0


def _pictures() -> list[bytes]:
    """Six busy full-screen pictures (gradients, blocks, lines: what a video or a slide has)."""
    out = []
    for n in range(6):
        image = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
        draw = ImageDraw.Draw(image)
        for i in range(40):
            x, y = (i * 97 + n * 53) % WIDTH, (i * 61 + n * 37) % HEIGHT
            color = ((i * 40 + n * 30) % 256, (i * 70) % 256, (n * 90) % 256)
            draw.rectangle((x, y, x + 120, y + 70), fill=color)
        for y in range(0, HEIGHT, 9):
            draw.line((0, y, WIDTH, (y + n * 40) % HEIGHT), fill=(255 - y % 256, 120, n * 40))
        out.append(image.tobytes("raw", "BGRX"))
    return out


@dataclass
class Painter:
    """Repaints the source's whole screen FPS times a second, from a thread of its own."""

    screen: Screen
    painted: list[tuple[int, float]] = field(default_factory=list)  # (frame, when it was on screen)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn = open_display(self.screen, budget=False)
        root = conn.screen().root
        gc = root.create_gc()
        pixmaps = []
        for data in _pictures():
            pixmap = root.create_pixmap(WIDTH, HEIGHT, 24)
            for top in range(0, HEIGHT, 48):  # each request under the 256 KiB X request limit
                rows = data[top * WIDTH * 4:(top + 48) * WIDTH * 4]
                pixmap.put_image(gc, 0, top, WIDTH, len(rows) // (WIDTH * 4), X.ZPixmap, 24, 0, rows)
            pixmaps.append(pixmap)
        frame = 0
        while not self.stop.is_set():
            began = time.monotonic()
            root.copy_area(gc, pixmaps[frame % len(pixmaps)], 0, 0, WIDTH, HEIGHT, 0, 0)
            level = 8 + 16 * (frame % LEVELS)
            marker = root.create_gc(foreground=(level << 16) | (level << 8) | level)
            root.fill_rectangle(marker, MARK[0], MARK[1], MARK[2] - MARK[0], MARK[3] - MARK[1])
            marker.free()
            conn.sync()
            self.painted.append((frame, time.monotonic()))
            frame += 1
            time.sleep(max(0.0, began + 1 / FPS - time.monotonic()))
        conn.close()


class Stream:
    """Bytes from the bridge's WebSocket, read as a stream."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.buffer, self.bytes_in = ws, bytearray(), 0

    async def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            message = await self.ws.recv()
            assert isinstance(message, bytes)
            self.bytes_in += len(message)
            self.buffer += message
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        return chunk


@dataclass
class Target:
    url: str
    token: str
    decode: bool = False  # read the frame number: the latency
    slow: bool = False
    frames: list[float] = field(default_factory=list)  # when each update arrived
    latencies: list[float] = field(default_factory=list)
    bytes_in: int = 0

    async def run(self, painted: list[tuple[int, float]]) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with connect(self.url, additional_headers=headers, compression=None, max_size=None,
                           subprotocols=["binary"], open_timeout=30) as ws:  # type: ignore[list-item]
            stream = Stream(ws)
            await stream.read(12)
            await ws.send(b"RFB 003.008\n")
            (count,) = await stream.read(1)
            await stream.read(count)
            await ws.send(b"\x01")
            await stream.read(4)
            await ws.send(b"\x01")
            width, height = struct.unpack(">HH", await stream.read(4))
            await stream.read(16)
            (length,) = struct.unpack(">I", await stream.read(4))
            await stream.read(length)
            await ws.send(struct.pack(">BxH2i", 2, 2, 7, -223))  # Tight, DesktopSize: as noVNC
            await ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
            while True:
                await self._update(stream, painted)
                self.bytes_in = stream.bytes_in
                if self.slow:
                    await asyncio.sleep(1.0)
                await ws.send(struct.pack(">BBHHHH", 3, 1, 0, 0, width, height))

    async def _update(self, stream: Stream, painted: list[tuple[int, float]]) -> None:
        kind, count = struct.unpack(">BxH", await stream.read(4))
        assert kind == 0, kind
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", await stream.read(12))
            if encoding == -223:
                continue
            assert encoding == 7, encoding
            control = (await stream.read(1))[0]
            assert control == 0x90, control  # JPEG
            size, shift = 0, 0
            for used in range(3):
                byte = (await stream.read(1))[0]
                size |= (byte & 0x7F if used < 2 else byte) << shift
                shift += 7
                if not byte & 0x80:
                    break
            jpeg = await stream.read(size)
            if self.decode and x <= MARK[0] < x + w and y <= MARK[1] < y + h:
                self._latency(jpeg, MARK[0] + 32 - x, MARK[1] + 32 - y, painted)
        self.frames.append(time.monotonic())

    def _latency(self, jpeg: bytes, x: int, y: int, painted: list[tuple[int, float]]) -> None:
        now = time.monotonic()
        with Image.open(io.BytesIO(jpeg)) as image:
            level = image.convert("L").getpixel((x, y))
        assert isinstance(level, int)
        code = round((level - 8) / 16) % LEVELS
        shown = [when for frame, when in reversed(painted[-LEVELS:]) if frame % LEVELS == code]
        if shown:
            self.latencies.append(now - shown[0])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def xvnc_of(uid: int) -> int:
    return next(p for p in user_pids(uid) if Path(f"/proc/{p}/comm").read_text().strip() == "Xvnc")


async def measure(rig: Rig, urls: list[tuple[str, str]], xvnc: int, painter: Painter,
                  seconds: float, slow: tuple[str, str] | None) -> dict[str, Any]:
    """Watch with one client per url for ``seconds`` (after 3 s of warm-up)."""
    targets = [Target(url, token, decode=i < 3) for i, (url, token) in enumerate(urls)]
    if slow is not None:
        targets.append(Target(*slow, slow=True))
    tasks = [asyncio.create_task(t.run(painter.painted)) for t in targets]
    await asyncio.sleep(3)
    begun, xvnc0, daemon0, me0 = time.monotonic(), cpu_s(xvnc), rig.daemon_cpu_s(), time.process_time()
    counted = [len(t.frames) for t in targets]
    for t in targets:
        t.latencies.clear()
    await asyncio.sleep(seconds)
    took = time.monotonic() - begun
    fps = [(len(t.frames) - n) / took for t, n in zip(targets, counted, strict=True)]
    shown = targets[:len(urls)]
    figures = {
        "xvnc_pct": 100 * (cpu_s(xvnc) - xvnc0) / took,
        "daemon_pct": 100 * (rig.daemon_cpu_s() - daemon0) / took,
        "bench_pct": 100 * (time.process_time() - me0) / took,
        "fps": fps[:len(urls)],
        "slow_fps": fps[-1] if slow is not None else None,
        "latencies": [x for t in targets for x in t.latencies],
        "kb_per_frame": sum(t.bytes_in for t in shown) / max(1, sum(len(t.frames) for t in shown)) / 1024,
    }
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            raise RuntimeError(f"a target failed: {t.exception()!r}")
    return figures


def run(targets: int, seconds: float, say: Any) -> dict[str, Any]:
    with room(targets + 2) as rig, rig.api() as api:
        source_user, *users = rig.users
        harness.write_xsession(source_user, "#!/bin/sh\nexec openbox\n")  # nothing over the root window
        ids = []
        for user in rig.users:
            answer = api.post("/sessions", json={"user": user.name})
            answer.raise_for_status()
            ids.append(answer.json()["session"]["id"])
        harness.wait_for(lambda: len(rig.tops()) >= len(users), 120, "the targets' desktops to come up")
        rig.pause_tops(True)  # the targets' own desktops stand still: only the projection moves
        source, *target_ids = ids
        tokens = []
        for user in users:
            answer = api.post("/tokens", json={"user": user.name, "note": "bench projection"})
            answer.raise_for_status()
            tokens.append(answer.json()["token"])
        base = rig.daemon.url.replace("http://", "ws://")
        urls = [(f"{base}/api/v1/sessions/{i}/vnc", t) for i, t in zip(target_ids, tokens, strict=True)]
        answer = api.post("/sessions/project", json={"source": source, "ids": target_ids})
        answer.raise_for_status()
        assert answer.json()["failed"] == 0, answer.json()
        session = api.get(f"/sessions/{source}").json()
        painter = Painter(Screen(session["display"], str(rig.xauthority(source))))
        thread = threading.Thread(target=painter.run, daemon=True)
        thread.start()
        xvnc = xvnc_of(source_user.uid)
        try:
            say(f"1 target, {seconds:g} s")
            one = asyncio.run(measure(rig, urls[:1], xvnc, painter, seconds, None))
            say(f"{targets} targets and a slow one, {seconds:g} s")
            many = asyncio.run(measure(rig, urls[:targets], xvnc, painter, seconds, urls[targets]))
        finally:
            painter.stop.set()
            thread.join(10)
    latencies = sorted(many["latencies"])
    return {
        "projection_targets": targets,
        "projection_fps": round(statistics.median(many["fps"]), 1),
        "projection_fps_min": round(min(many["fps"]), 1),
        "projection_fps_1": round(one["fps"][0], 1),
        "projection_painted_fps": FPS,
        "projection_slow_target_fps": round(many["slow_fps"], 2),
        "projection_latency_p50_ms": round(1000 * statistics.median(latencies), 1),
        "projection_latency_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "projection_latency_samples": len(latencies),
        "projection_source_cpu_pct_1": round(one["xvnc_pct"], 1),
        f"projection_source_cpu_pct_{targets}": round(many["xvnc_pct"], 1),
        f"projection_source_cpu_ratio_{targets}_1": round(many["xvnc_pct"] / max(0.1, one["xvnc_pct"]), 2),
        "projection_daemon_cpu_pct_1": round(one["daemon_pct"], 1),
        f"projection_daemon_cpu_pct_{targets}": round(many["daemon_pct"], 1),
        "projection_daemon_cpu_pct_per_target": round(
            (many["daemon_pct"] - one["daemon_pct"]) / max(1, targets - 1), 2),
        "projection_kb_per_frame": round(many["kb_per_frame"], 1),
        "projection_bench_client_cpu_pct": round(many["bench_pct"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.projection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("python -m bench.projection: run as root (it creates users and sessions)", file=sys.stderr)
        return 2
    if not 1 <= args.targets <= 100 or not 1 <= args.seconds <= 600:
        parser.error("--targets 1..100, --seconds 1..600")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with contextlib.suppress(KeyboardInterrupt):
        figures = run(args.targets, args.seconds, say=lambda line: print(line, flush=True))
        width = max(map(len, figures))
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
        write(args.out, figures)
        print(f"written to {args.out}")
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(main())
