"""/metrics: Prometheus text from a real daemon with real sessions, and who may read it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from polydesk.config.settings import Settings
from polydesk.web.routes.metrics import is_loopback, may_scrape
from polydesk.web.server import PEER_KEY
from tests.harness import Daemon
from tests.users import TestUser

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, **kwargs: Any) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def api_socket(daemon: Daemon) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://polydesk")


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_logoff_moves_the_counters(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    before = scrape(daemon.url)
    result = daemon.cli("logon", ana.name, "--json")
    assert result.returncode == 0, result.stderr
    session_id = json.loads(result.stdout)["session"]["id"]
    # A thumbnail, through the API socket as root: capture, scale and encode happen.
    with api_socket(daemon) as api:
        thumb = api.get(f"/api/v1/sessions/{session_id}/thumbnail?size=small")
        assert thumb.status_code == 200
    during = scrape(daemon.url)
    assert value(during, "polydesk_sessions", state="active") == 1
    assert value(during, "polydesk_logons_total", result="started") == value(
        before, "polydesk_logons_total", result="started") + 1
    assert value(during, "polydesk_thumbnail_frames_total") >= 1
    assert value(during, "polydesk_thumbnail_cpu_seconds_total") > 0
    route = "/api/v1/sessions/{session_id}/thumbnail"
    assert value(during, "polydesk_http_request_duration_seconds_count",
                 method="GET", route=route, status="200") == 1

    result = daemon.cli("logoff", session_id, "--force", "--yes")
    assert result.returncode == 0, result.stderr

    after = scrape(daemon.url)
    assert value(after, "polydesk_logoffs_total", reason="logoff") == value(
        before, "polydesk_logoffs_total", reason="logoff") + 1
    assert value(after, "polydesk_sessions", state="active") == 0
    assert value(after, "polydesk_audit_entries_total", action="logoff", allowed="true") == value(
        during, "polydesk_audit_entries_total", action="logoff", allowed="true") + 1
    assert value(after, "process_cpu_seconds_total") > 0


def test_counters_survive_a_daemon_restart(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    """They are read from the audit log and the session history, not kept in memory."""
    result = fake_daemon.cli("logon", make_user("ana").name, "--json")
    assert result.returncode == 0, result.stderr
    session_id = json.loads(result.stdout)["session"]["id"]
    assert fake_daemon.cli("logoff", session_id, "--force", "--yes").returncode == 0
    before = scrape(fake_daemon.url)
    assert value(before, "polydesk_logoffs_total", reason="logoff") == 1
    fake_daemon.stop()
    fake_daemon.start()
    after = scrape(fake_daemon.url)
    for name, labels in (("polydesk_logoffs_total", {"reason": "logoff"}),
                         ("polydesk_logons_total", {"result": "started"}),
                         ("polydesk_audit_entries_total", {"action": "logoff", "allowed": "true"})):
        assert value(after, name, **labels) == value(before, name, **labels) >= 1


def _open_daemon(daemon_factory: Callable[..., Daemon], listen: str, extra: str = "") -> Daemon:
    daemon = daemon_factory(backends='["fake"]', start=False)
    text = daemon.config.read_text()
    text = text.replace(f'listen = "127.0.0.1:{daemon.port}"', f'listen = "{listen}:{daemon.port}"')
    daemon.config.write_text(text + extra)
    daemon.start()
    return daemon


def test_not_open_beyond_loopback_without_the_token(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = _open_daemon(daemon_factory, "0.0.0.0", 'metrics_token = "s3cret-scraper"\n')
    refused = httpx.get(f"{daemon.url}/metrics", timeout=30)
    assert refused.status_code == 403 and "metrics_token" in refused.json()["error"]["message"]
    wrong = httpx.get(f"{daemon.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 403
    assert "polydesk_sessions" in str(scrape(daemon.url, headers={"Authorization": "Bearer s3cret-scraper"}))
    with api_socket(daemon) as api:
        assert api.get("/metrics").status_code == 200  # the API socket: local users only


def test_a_reverse_proxy_does_not_open_it(fake_daemon: Daemon) -> None:
    for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                   {"X-Forwarded-Proto": "https"}):
        assert httpx.get(f"{fake_daemon.url}/metrics", headers=header, timeout=30).status_code == 403


def test_metrics_can_be_switched_off(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(backends='["fake"]', extra_config="metrics = false")
    assert httpx.get(f"{daemon.url}/metrics", timeout=30).status_code == 404


@pytest.mark.parametrize(("listen", "client", "headers", "token", "auth", "allowed"), [
    ("127.0.0.1:8765", "127.0.0.1", [], "", "", True),
    ("[::1]:8765", "::1", [], "", "", True),
    ("localhost:8765", "127.0.0.1", [], "", "", True),
    ("127.0.0.1:8765", "127.0.0.1", [(b"x-real-ip", b"198.51.100.1")], "", "", False),
    ("0.0.0.0:8765", "127.0.0.1", [], "", "", False),
    ("192.168.1.10:8765", "192.168.1.20", [], "", "", False),
    ("192.168.1.10:8765", "192.168.1.20", [], "tok", "Bearer tok", True),
    ("192.168.1.10:8765", "192.168.1.20", [], "tok", "Bearer tok2", False),
    ("192.168.1.10:8765", "192.168.1.20", [], "", "Bearer ", False),
])
def test_who_may_scrape(listen: str, client: str, headers: list[tuple[bytes, bytes]], token: str, auth: str,
                        allowed: bool) -> None:
    settings = Settings(listen=listen, metrics_token=token)
    scope = {"type": "http", "client": (client, 40000), "headers": headers}
    assert may_scrape(scope, settings, auth) is allowed


def test_the_api_socket_may_always_scrape() -> None:
    scope = {"type": "http", "client": None, "headers": [], PEER_KEY: (1, 1000, 1000)}
    assert may_scrape(scope, Settings(listen="0.0.0.0:8765"), "")


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.5") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("example.org")
