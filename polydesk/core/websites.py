"""Web limits: which sites a limited session's user may reach, with MultiPoint's matching rules.

A limit is a mode and a list of entries:

- ``allow``: only the listed sites; everything else is refused, a connection that names no site
  (no SNI, no Host) or names an IP address included;
- ``block``: the listed sites are refused; everything else is open.

An entry with a dot (``contoso.com``) matches that domain and every subdomain of it
(``www.newpage.contoso.com``); a bare word (``contoso``) matches every domain that has that
label (``contoso.com``, ``contoso.co.uk``, ``www.contoso.org``), as MultiPoint's do.

Entries are taken as people type them (``https://www.Contoso.com/path``) and kept in one
form: lower case, ASCII (IDNA for other scripts), no scheme, port, path or trailing dot.
Pure: imports only ``model``.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from dataclasses import dataclass

from polydesk.core.model import InvalidRequest

MAX_SITES = 200  # entries in one list
MAX_NAME = 253  # a DNS name's length
# A list entry in its one form, as the REST API takes it (the CLI and the Dashboard bring what
# people type to it with ``site_entry`` and the URL parser): lower-case ASCII labels, no hyphen
# at either end of one, and a last label that is not all digits (that would be an address).
_L = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_LAST = "(?:[a-z]|[a-z][a-z0-9-]*[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z]|[a-z0-9][a-z0-9-]*[a-z][a-z0-9-]*[a-z0-9])"
SITE_PATTERN = rf"^(?:{_L}\.)*{_LAST}$"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A saved list's name: one line, no control character and no "/", not blank (as the API says it).
LIST_NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f/]*[^\s\x00-\x1f\x7f-\x9f/][^\x00-\x1f\x7f-\x9f/]*$"


class WebMode(enum.StrEnum):
    ALLOW = "allow"  # allow only these sites
    BLOCK = "block"  # disallow only these sites


@dataclass(frozen=True)
class WebLimit:
    mode: WebMode
    sites: tuple[str, ...]

    def permits(self, host: str | None) -> bool:
        """Whether a connection naming ``host`` (SNI or Host; None: none) may go through."""
        name = host_name(host) if host is not None else None
        if name is None:  # no name, an IP address, or no valid name: only a block list lets it by
            return self.mode == WebMode.BLOCK
        listed = any(matches(entry, name) for entry in self.sites)
        return listed if self.mode == WebMode.ALLOW else not listed

    def as_dict(self) -> dict[str, object]:
        return {"mode": str(self.mode), "sites": list(self.sites)}


def matches(entry: str, name: str) -> bool:
    """MultiPoint's rule: a dotted entry is a domain and its subdomains; a bare word, a label."""
    if "." in entry:
        return name == entry or name.endswith("." + entry)
    return entry in name.split(".")


def site_entry(value: object) -> str:
    """``value`` as a list entry, in its one form; InvalidRequest naming it if it is none."""
    if not isinstance(value, str):
        raise InvalidRequest(f"sites: each site must be text, not {type(value).__name__}")
    text = value.strip().lower()
    shown = value if len(value) <= 80 else value[:80] + "…"
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)  # a scheme
    text = re.split(r"[/?#]", text, maxsplit=1)[0]  # a path, a query
    text = text.rsplit("@", 1)[-1]  # user info
    text = re.sub(r":\d*$", "", text).rstrip(".")  # a port, the root's dot
    if text.startswith("*."):
        text = text[2:]  # "*.contoso.com" means what "contoso.com" does already
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        raise InvalidRequest(f"sites: {shown!r} is an IP address; a limit lists names of sites")
    try:
        text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        raise InvalidRequest(f"sites: {shown!r} is not a site name") from None
    if not text or len(text) > MAX_NAME or not re.match(SITE_PATTERN, text):
        raise InvalidRequest(f"sites: {shown!r} is not a site name "
                             "(like contoso.com, or a word like contoso)")
    return text


def web_limit(mode: object, sites: object) -> WebLimit:
    """A limit from a request's fields; InvalidRequest naming the bad field or entry."""
    try:
        web_mode = WebMode(str(mode)) if isinstance(mode, str) else WebMode("")
    except ValueError:
        raise InvalidRequest(f"mode: {mode!r} is not one of 'allow', 'block'") from None
    if not isinstance(sites, (list, tuple)):
        raise InvalidRequest("sites: must be a list of site names")
    if len(sites) > MAX_SITES:
        raise InvalidRequest(f"sites: at most {MAX_SITES} sites in one list")
    # An empty allow list is a limit too: no site at all (the web cut off).
    return WebLimit(web_mode, tuple(dict.fromkeys(site_entry(site) for site in sites)))


def stored_limit(text: str | None) -> WebLimit | None:
    """A limit as the store keeps it (JSON), read back; None: none (or one no longer valid)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return web_limit(data["mode"], data["sites"])
    except (ValueError, KeyError, TypeError, InvalidRequest):
        return None


def list_name(value: object) -> str:
    """The name of a saved list ("Exam", "Research"): one line of at most 60 characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= 60 or not re.match(LIST_NAME_PATTERN, value):
        raise InvalidRequest("name: a list's name is one line of 1 to 60 characters, without '/'")
    return value.strip()


def host_name(host: str) -> str | None:
    """The DNS name a Host header or SNI gives, in list form; None for an IP address or junk.

    ``Host: www.contoso.com:8080`` gives ``www.contoso.com``; ``Host: [::1]:80``,
    ``Host: 10.0.0.1`` and ``Host: 0x7f.1`` give None (an address names no site).
    """
    text = host.strip().lower()
    if text.startswith("["):
        return None
    text = re.sub(r":\d*$", "", text).rstrip(".")
    if not text or len(text) > MAX_NAME:
        return None
    labels = text.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return None
    # A last label of digits only (or hex) is what inet_aton reads as an address: "0x7f.1", "2130706433".
    if re.fullmatch(r"(0x[0-9a-f]*|[0-9]+)", labels[-1]):
        return None
    return text
