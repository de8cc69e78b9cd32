"""Web limits' lists and MultiPoint's matching rules (core/websites.py)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polydesk.core.model import InvalidRequest
from polydesk.core.websites import (
    SITE_PATTERN,
    WebLimit,
    WebMode,
    host_name,
    list_name,
    matches,
    site_entry,
    web_limit,
)


def test_a_dotted_entry_is_the_domain_and_its_subdomains() -> None:
    assert matches("contoso.com", "contoso.com")
    assert matches("contoso.com", "www.newpage.contoso.com")
    assert not matches("contoso.com", "notcontoso.com")
    assert not matches("contoso.com", "contoso.com.evil.test")
    assert not matches("www.contoso.com", "contoso.com")


def test_a_bare_word_is_any_domain_with_that_label() -> None:
    for name in ("contoso.com", "contoso.co.uk", "www.contoso.org", "contoso"):
        assert matches("contoso", name)
    for name in ("mycontoso.com", "contosos.com", "con.toso.com"):
        assert not matches("contoso", name)


def test_entries_are_kept_in_one_form() -> None:
    assert site_entry("  https://user@WWW.Contoso.com:8443/path?q#x ") == "www.contoso.com"
    assert site_entry("*.contoso.com.") == "contoso.com"
    assert site_entry("Contoso") == "contoso"
    assert site_entry("bücher.de") == "xn--bcher-kva.de"
    for bad in ("", "10.0.0.1", "[::1]", "a b.com", "-x.com", "a..b", "a.b.123", 7):
        with pytest.raises(InvalidRequest, match=r"^sites: "):
            site_entry(bad)


def test_allow_only_refuses_what_names_no_site() -> None:
    limit = web_limit("allow", ["contoso.com", "wikipedia"])
    assert limit.permits("www.contoso.com") and limit.permits("pt.wikipedia.org:443")
    for refused in ("fabrikam.test", None, "", "10.0.0.1", "[::1]:443", "0x7f.1", "2130706433", "x y"):
        assert not limit.permits(refused), refused


def test_block_only_refuses_the_listed_sites_only() -> None:
    limit = web_limit("block", ["contoso.com", "games"])
    assert not limit.permits("www.contoso.com.") and not limit.permits("games.example.test")
    assert limit.permits("fabrikam.test") and limit.permits(None) and limit.permits("10.0.0.1")


def test_requests_are_checked_field_by_field() -> None:
    with pytest.raises(InvalidRequest, match=r"^mode: "):
        web_limit("only", ["a.test"])
    with pytest.raises(InvalidRequest, match=r"^sites: must be a list"):
        web_limit("allow", "a.test")
    assert web_limit("allow", []) == WebLimit(WebMode.ALLOW, ())  # nothing allowed: the web cut off
    assert not web_limit("allow", []).permits("contoso.test")
    with pytest.raises(InvalidRequest, match=r"^sites: at most"):
        web_limit("block", [f"s{i}.test" for i in range(201)])
    assert web_limit("block", ["A.test", "a.test"]) == WebLimit(WebMode.BLOCK, ("a.test",))
    assert list_name(" Exam ") == "Exam"
    for bad in ("", " ", "a/b", "x" * 61, "a\nb", "\x87", " \x85 ", None):
        with pytest.raises(InvalidRequest, match=r"^name: "):
            list_name(bad)


@given(st.from_regex(SITE_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 253))
def test_the_apis_pattern_is_the_one_form(site: str) -> None:
    assert site_entry(site) == site


@pytest.mark.parametrize("bad", ["10.0.0.1", "a.123", "-a.com", "a-.com", "A.com", "a..b", "a.b.", "xn--",
                                 "é.com"])
def test_what_the_pattern_refuses_site_entry_rewrites_or_refuses(bad: str) -> None:
    assert not re.match(SITE_PATTERN, bad)
    with contextlib.suppress(InvalidRequest):  # rewritten into the one form, or refused
        assert re.match(SITE_PATTERN, site_entry(bad))


@given(st.text(max_size=300))
def test_any_host_text_gives_a_valid_name_or_none(text: str) -> None:
    name = host_name(text)
    if name is not None:
        assert site_entry(name) == name  # what the proxy compares is in the lists' own form
    assert web_limit("block", ["contoso"]).permits(text) in (True, False)


@given(st.lists(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), min_size=1, max_size=5))
def test_a_subdomain_of_an_allowed_domain_is_allowed(labels: list[str]) -> None:
    limit = web_limit("allow", ["contoso.test"])
    assert limit.permits(".".join([*labels, "contoso.test"]))
    assert not limit.permits(".".join([*labels, "fabrikam.test"]))
