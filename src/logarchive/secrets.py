"""Secrets that never print, and redaction of everything that might carry one.

Every :class:`Secret` value that passes config validation is registered here; :func:`redact`
replaces registered values, URL credentials and presigned query parameters in any text. The
logging pipeline and every :class:`~logarchive.errors.LogarchiveError` go through it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, SecretStr

MASK = "***"

# Query parameters of presigned URLs (S3 v2/v4, OBS, GCS, Azure SAS) and common token names.
SENSITIVE_QUERY_KEYS = frozenset(
    k.lower()
    for k in (
        "AWSAccessKeyId", "Signature", "Expires", "X-Amz-Signature", "X-Amz-Credential",
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
_registry_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]*(?::[^/\s@]*)?@")
_QUERY = re.compile(r"(?P<sep>[?&;])(?P<key>[A-Za-z0-9_.-]+)=(?P<value>[^&\s\"'<>#]*)")
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic|splunk)\s+[A-Za-z0-9._~+/=-]{4,}")


def register_secret(value: str) -> None:
    """Make ``value`` redacted from every log line and error from now on."""
    global _pattern
    if not value or len(value) < 4:
        # Too short to redact safely without mangling ordinary text; still never printed by Secret.
        return
    with _registry_lock:
        if value in _registry:
            return
        _registry.add(value)
        ordered = sorted(_registry, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


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
    return text


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
