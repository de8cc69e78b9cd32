"""Polydesk's nftables table (system/webrules.py): loaded whole, replaced in one transaction,
removed, and never a rule of any other table touched. In a private network namespace."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from polydesk.core.model import BackendError
from polydesk.system import webrules
from polydesk.system.webrules import UserRules
from tests import weblab

pytestmark = pytest.mark.skipif(not webrules.nft_available(),
                                reason="nftables is not installed (scripts/install)")

OTHER = ("table inet someone_else {\n  chain out {\n"
         "    type filter hook output priority 10; policy accept;\n    tcp dport 9 counter\n  }\n}\n")


@pytest.fixture
def netns() -> Iterator[None]:
    with weblab.private_network():
        subprocess.run(["nft", "-f", "-"], input=OTHER, text=True, check=True)
        yield


def _ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def test_the_table_is_replaced_whole_and_removed_leaving_others_alone(netns: None) -> None:
    other = subprocess.run(["nft", "list", "table", "inet", "someone_else"], capture_output=True, text=True,
                           check=True).stdout
    webrules.apply([UserRules(1001, 40001, True), UserRules(1002, 40002, False)],
                   ["192.0.2.53", "2001:db8::53"])
    table = webrules.listed()
    assert "elements = { 1001, 1002 }" in table and "1001 : 40001" in table and "192.0.2.53" in table
    webrules.apply([UserRules(1002, 40003, False)])  # one transaction: the old rules go with it
    table = webrules.listed()
    assert "1001" not in table and "1002 : 40003" in table
    webrules.apply([UserRules(1002, 0, True)], closed=True)  # the daemon stops: nothing redirected
    assert "redirect" not in webrules.listed() and "reject with tcp reset" in webrules.listed()
    webrules.remove()
    webrules.remove()  # removing what is not there is no error
    assert webrules.listed() == "" and "polydesk" not in _ruleset()
    assert subprocess.run(["nft", "list", "table", "inet", "someone_else"], capture_output=True, text=True,
                          check=True).stdout == other


def test_a_table_the_kernel_refuses_is_an_error_that_says_so(netns: None) -> None:
    webrules.apply([UserRules(1001, 40001, True)])
    with pytest.raises(BackendError, match="nft refused the rules"):
        webrules._nft(["-f", "-"], "delete table inet polydesk\ntable inet polydesk { chain x { nonsense } }")
    assert "1001 : 40001" in webrules.listed()  # a refused transaction changes nothing


def test_resolvers_are_read_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver junk\nsearch a.test\n")
    assert webrules.resolvers(conf) == ["192.0.2.53", "fe80::1"]
    assert webrules.resolvers(Path("/nonexistent")) == []


def test_the_browser_policies_turn_off_what_tunnels_past_the_proxy() -> None:
    import json

    folder = Path(__file__).resolve().parents[2] / "contrib" / "browser-policies"
    chromium = json.loads((folder / "chromium-polydesk-web-limits.json").read_text())
    assert chromium == {"DnsOverHttpsMode": "off", "QuicAllowed": False, "EncryptedClientHelloEnabled": False}
    firefox = json.loads((folder / "firefox-policies.json").read_text())["policies"]
    assert firefox["DNSOverHTTPS"] == {"Enabled": False, "Locked": True}
    assert {name for name, pref in firefox["Preferences"].items() if pref["Status"] == "locked"} >= {
        "network.http.http3.enable", "network.dns.echconfig.enabled", "network.trr.mode"}
    install = (folder.parents[1] / "scripts" / "install").read_text()
    assert "/etc/chromium/policies/managed/polydesk-web-limits.json" in install and "nftables" in install
