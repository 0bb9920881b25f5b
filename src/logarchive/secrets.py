"""Secrets that never print, and redaction of everything that might carry one.

Every :class:`Secret` value that passes config validation is registered here; :func:`redact`
replaces registered values, URL credentials and presigned query parameters in any text. The
logging pipeline and every :class:`~logarchive.errors.LogarchiveError` go through it.

The masking rule (README, Guarantees):

- a registered secret of :data:`MIN_SUBSTRING` characters or more is masked wherever it
  appears, inside any text;
- a shorter one is masked only where it stands as a whole value: a header (``Name: value``), a
  query parameter or cookie (``name=value``), URL userinfo; never inside ordinary words;
- the values of a presigned link (its signature, credential, token, access key, expiry) are
  masked by value in whatever quotes the response to that link (:func:`redact_with` with
  :func:`presigned_values`), without being registered for the life of the process; the
  credential elements of a storage error body (``<AWSAccessKeyId>``, ``<SignatureProvided>``,
  ``<StringToSign>``, ``<CanonicalRequest>``...) are masked whatever their value.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, SecretStr

MASK = "***"
MIN_SUBSTRING = 6
"""Secrets at least this long are masked inside any text; shorter ones only as whole values."""

# Query parameters of presigned URLs (S3 v2/v4, OBS, GCS, Azure SAS) and common token names.
SENSITIVE_QUERY_KEYS = frozenset(
    k.lower()
    for k in (
        "AWSAccessKeyId", "AccessKeyId", "GoogleAccessId", "Signature", "Expires",
        "X-Obs-Credential", "X-Obs-Signature", "SecurityToken", "X-Amz-Signature", "X-Amz-Credential",
        "X-Amz-Security-Token", "X-Amz-Date", "X-Goog-Signature", "X-Goog-Credential",
        "x-obs-security-token", "sig", "se", "sv", "token", "access_token", "api_key",
        "apikey", "key", "password", "secret", "client_secret", "code",
    )
)
SENSITIVE_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization", "Cookie", "Set-Cookie", "X-Auth-Token", "DD-API-KEY",
        "DD-APPLICATION-KEY", "X-Api-Key", "Proxy-Authorization",
    )
)

_registry: set[str] = set()
_short: frozenset[str] = frozenset()
_registry_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]*(?::[^/\s@]*)?@")
_QUERY = re.compile(r"(?P<sep>[?&;])(?P<key>[A-Za-z0-9_.-]+)=(?P<value>[^&\s\"'<>#]*)")
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic|splunk)\s+[A-Za-z0-9._~+/=-]{4,}")
# A whole value: after ``=`` (query, cookie) or ``: `` (header), up to a separator.
_WHOLE_VALUE = re.compile(
    r"(?P<pre>(?:[=]|:[ \t]*))(?P<value>[^\s&;,\"'<>=]+={0,2})(?=$|[\s&;,\"'<>])")
# Credential elements of S3/OBS/GCS XML error bodies, which echo the presigned request.
_XML_CREDENTIALS = re.compile(
    r"<(?P<tag>AWSAccessKeyId|SignatureProvided|StringToSign(?:Bytes)?|CanonicalRequest(?:Bytes)?"
    r"|Signature|SecurityToken|X-Amz-Security-Token|GoogleAccessId|AccessKeyId)>"
    r"(?P<value>[^<]*)</(?P=tag)>", re.IGNORECASE)


def register_secret(value: str) -> None:
    """Make ``value`` redacted from every log line and error from now on."""
    global _pattern, _short
    if not value:
        return
    with _registry_lock:
        if value in _registry or value in _short:
            return
        if len(value) < MIN_SUBSTRING:
            # Too short to mask inside text without mangling it: masked as a whole value only.
            _short = _short | {value}
            return
        _registry.add(value)
        ordered = sorted(_registry, key=len, reverse=True)
        _pattern = re.compile("|".join(_any_spelling(v) for v in ordered))


def _any_spelling(value: str) -> str:
    """A pattern for ``value`` as is or with any of its characters percent-encoded (a server
    that echoes a URL or a form may encode '+', '/', '=' of base64-style tokens, or more)."""
    def char(c: str) -> str:
        encoded = "".join(f"%[{h[0]}{h[0].lower()}][{h[1]}{h[1].lower()}]"
                          for h in (f"{b:02X}" for b in c.encode()))
        return f"(?:{re.escape(c)}|{encoded}" + ("|\\+)" if c == " " else ")")
    return "".join(char(c) for c in value)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets, URL credentials and signed query values masked."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if "=" in text:
        text = _QUERY.sub(_mask_query_match, text)
    text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if "<" in text:
        text = _XML_CREDENTIALS.sub(lambda m: f"<{m.group('tag')}>{MASK}</{m.group('tag')}>",
                                    text)
    return _mask_whole_values(text, _short)


def _mask_whole_values(text: str, values: frozenset[str]) -> str:
    if not values or ("=" not in text and ":" not in text):
        return text

    def mask(match: re.Match[str]) -> str:
        return match.group("pre") + MASK if match.group("value") in values else match.group(0)
    return _WHOLE_VALUE.sub(mask, text)


def presigned_values(url: str) -> list[str]:
    """The secret values of a (presigned) URL: its sensitive query parameters' values, the
    parts of a ``Credential`` scope (the access key), and its userinfo."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return []
    values = [v for k, v in pairs if k.lower() in SENSITIVE_QUERY_KEYS]
    values += [part for v in list(values) if "/" in v for part in v.split("/")]
    values += [v for v in (parts.username, parts.password) if v]
    return [v for v in dict.fromkeys(values) if v]


def redact_with(text: str, values: list[str]) -> str:
    """:func:`redact`, and mask ``values`` too (per the rule above: the long ones anywhere,
    the short ones as whole values) without registering them for the rest of the process."""
    long_values = sorted((v for v in values if len(v) >= MIN_SUBSTRING), key=len, reverse=True)
    for value in long_values:
        text = text.replace(value, MASK)
    short = frozenset(v for v in values if len(v) < MIN_SUBSTRING)
    return _mask_whole_values(redact(text), short)


def _mask_query_match(match: re.Match[str]) -> str:
    if match.group("key").lower() in SENSITIVE_QUERY_KEYS:
        return f"{match.group('sep')}{match.group('key')}={MASK}"
    return match.group(0)


def redact_url(url: str) -> str:
    """A URL safe to show: no userinfo, and every sensitive query value masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, MASK if k.lower() in SENSITIVE_QUERY_KEYS else v) for k, v in pairs], safe="*"
        )
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


class RedactFilter(logging.Filter):
    """A :mod:`logging` filter that redacts every record's message (its arguments merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def redact_value(value: Any) -> Any:
    """Redact strings inside nested dicts/lists (used for log event dicts and manifests)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def _register(value: SecretStr) -> SecretStr:
    register_secret(value.get_secret_value())
    return value


Secret = Annotated[SecretStr, AfterValidator(_register)]
"""A config value that never prints (``**********``) and is redacted from every output."""


_URL_USERINFO_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*$")
_URL_QUERY_PREFIX = re.compile(r"\?(?:[^#]*&)?[A-Za-z0-9_.-]+=$")


def encode_in_url(template: str, start: int, end: int, value: str) -> str:
    """``value`` substituted for ``template[start:end]`` (a ``${...}``) in a URL: percent-encoded
    when it lands in the userinfo or in a query parameter's value, so a ``/``, ``@``, ``#``, ``:``
    or ``&`` in a password stays part of the password (libpq decodes it); as is elsewhere (a
    whole URL from the environment)."""
    before = template[:start]
    in_userinfo = _URL_USERINFO_PREFIX.match(before) and "@" in template[end:].split("/")[0]
    in_query = _URL_QUERY_PREFIX.search(before)
    return quote(value, safe="") if in_userinfo or in_query else value


def _is_secret_param(key: str) -> bool:
    key = key.lower()
    return key in SENSITIVE_QUERY_KEYS or any(
        word in key for word in ("password", "secret", "token"))


def url_secrets(url: str) -> list[str]:
    """The secrets of a database URL: its userinfo password and every password-like query
    parameter (``password``, ``sslpassword``, ...), as written and decoded."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    for pair in parts.query.split("&"):
        key, _, raw = pair.partition("=")
        if raw and _is_secret_param(unquote(key)):
            found.append(raw)
    return [spelling for value in found
            for spelling in dict.fromkeys((value, unquote(value), unquote_plus(value)))]


def database_place(url: str) -> str:
    """A database URL safe to show: ``scheme://***@host:port/database`` (a socket directory
    given as ``?host=`` is kept as that parameter); no user, password or other parameter."""
    try:
        parts = urlsplit(url)
        hosts = [v for k, v in parse_qsl(parts.query) if k in ("host", "hostaddr")]
    except ValueError:
        return f"{url.partition(':')[0]}://{MASK}"
    place = f"{parts.scheme}://{MASK}@{parts.netloc.rpartition('@')[2]}{parts.path}"
    if hosts and "/" in hosts[0]:
        place += f"?host={hosts[0]}"
    return place


def _register_url_credentials(value: SecretStr) -> SecretStr:
    """A database URL: ``postgresql://`` (or ``postgres://``); its password (in the userinfo or
    a password-like parameter) is registered, so no output shows it."""
    url = value.get_secret_value()
    try:
        parts = urlsplit(url)
        secrets = url_secrets(url)
    except ValueError:
        parts, secrets = None, []
    if parts is None or parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL (postgresql://USER:${PASSWORD}@HOST/"
                         "DATABASE), or no ledger key for the SQLite ledger in state_dir")
    for secret in secrets:
        register_secret(secret)
    return value


LedgerUrl = Annotated[SecretStr, AfterValidator(_register_url_credentials)]
"""A database URL that never prints; its credentials are redacted from every output."""
