"""Shared HTTP machinery for sources and sinks (httpx).

- :class:`HttpOptions`: timeouts (connect, stall), TLS, retries: one config block every HTTP
  plugin exposes as-is.
- :class:`AuthConfig`: ``bearer | cookie | basic | headers`` with secrets that never print.
- :class:`HttpClient`: ``request`` with the core retry loop (connection errors, timeouts, 408,
  429, 5xx, ``Retry-After``) and ``download``: a streaming GET that resumes a dropped or stalled
  stream with ``Range`` when the server allows it (otherwise it re-reads from the start and skips
  what was already delivered, after checking that prefix is unchanged), checks
  ``Content-Length``, and can ask for a fresh URL when a presigned one expires.
- Every URL that reaches a log line or an error is redacted (no userinfo, no signature).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from logarchive.errors import SourceError
from logarchive.retry import (
    RetryOptions, Retryable, call_with_retries, parse_retry_after, retrying,
)
from logarchive.secrets import RedactFilter, Secret, redact, redact_url, register_secret
from logarchive.version import __version__

USER_AGENT = f"logarchive/{__version__}"


# httpx logs every request URL at INFO (a presigned link with its signature): redact at the
# logger itself, so no handler (an embedder's, pytest's caplog) ever sees it raw.
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2",
              "httpcore.proxy"):
    logging.getLogger(_name).addFilter(RedactFilter())
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpOptions(BaseModel):
    """Timeouts, TLS and retries of one HTTP endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect.",
                                   examples=[10])
    read_timeout: float = Field(
        default=60.0, gt=0,
        description="Seconds without a byte before a stream counts as stalled and is retried.",
        examples=[60],
    )
    verify: bool | str = Field(default=True, description="Verify TLS (or a CA bundle path).",
                               examples=[True])
    retry: RetryOptions = Field(default_factory=RetryOptions,
                                description="Retries with backoff and jitter.")


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(description="User name.", examples=["svc-logs"])
    password: Secret = Field(description="Password.", examples=["${API_PASSWORD}"])


class AuthConfig(BaseModel):
    """Exactly one way to authenticate (or none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bearer: Secret | None = Field(default=None, description="Sent as Authorization: Bearer.",
                                  examples=["${API_TOKEN}"])
    cookie: dict[str, Secret] | None = Field(default=None, description="Cookies to send.",
                                             examples=[{"session": "${SESSION}"}])
    basic: BasicAuth | None = Field(default=None, description="HTTP basic auth.")
    headers: dict[str, Secret] | None = Field(
        default=None, description="Extra secret headers (DD-API-KEY style).",
        examples=[{"X-Api-Key": "${API_KEY}"}],
    )

    @model_validator(mode="after")
    def _at_most_one(self) -> AuthConfig:
        chosen = [k for k in ("bearer", "cookie", "basic") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose one of bearer, cookie, basic (got {', '.join(chosen)})")
        return self

    def apply(self, headers: dict[str, str], cookies: dict[str, str]) -> httpx.Auth | None:
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer.get_secret_value()}"
        for name, value in (self.cookie or {}).items():
            cookies[name] = value.get_secret_value()
        for name, value in (self.headers or {}).items():
            headers[name] = value.get_secret_value()
        if self.basic is not None:
            return httpx.BasicAuth(self.basic.username, self.basic.password.get_secret_value())
        return None


def retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response's JSON object, or a SourceError naming ``what`` (not JSON / not an object)."""
    try:
        document = response.json()
    except ValueError:
        raise SourceError(f"{what}: the response is not JSON") from None
    if not isinstance(document, dict):
        raise SourceError(f"{what}: the response is not a JSON object")
    return document


def describe_response(response: httpx.Response, limit: int = 300) -> str:
    """``HTTP 403 from GET https://host/path`` plus the start of the body, redacted."""
    try:
        body = response.text[:limit].strip()
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        body = ""
    request = response.request
    text = f"HTTP {response.status_code} from {request.method} {redact_url(str(request.url))}"
    return redact(f"{text}: {body}" if body else text)


class HttpClient:
    """An httpx client with logarchive's timeouts, auth, retries and redaction."""

    def __init__(self, base_url: str = "", *, options: HttpOptions | None = None,
                 auth: AuthConfig | None = None, headers: dict[str, str] | None = None,
                 stop: threading.Event | None = None, log: Any = None,
                 error: type[Exception] = SourceError) -> None:
        self.options = options or HttpOptions()
        self.stop = stop or threading.Event()
        self.log = log
        self.error = error
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        cookies: dict[str, str] = {}
        basic = auth.apply(all_headers, cookies) if auth else None
        self._client = httpx.Client(
            base_url=base_url,
            headers=all_headers,
            cookies=cookies,
            auth=basic,
            timeout=httpx.Timeout(self.options.read_timeout, connect=self.options.connect_timeout),
            verify=self.options.verify,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def _on_retry(self, what: str) -> Callable[[int, BaseException, float], None]:
        def report(attempt: int, exc: BaseException, delay: float) -> None:
            if self.log is not None:
                self.log.warning("http_retry", request=what, attempt=attempt,
                                 error=redact(str(exc)), delay=round(delay, 2))
        return report

    def request(
        self, method: str, url: str, *,
        classify: Callable[[httpx.Response], None] | None = None,
        retry_status: frozenset[int] = RETRIABLE_STATUS,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with retries; returns the (read) response.

        ``classify(response)`` runs first and may raise a final error (or :class:`Retryable`)
        for statuses the caller knows; then any status in ``retry_status`` is retried and any
        other 4xx/5xx raises ``self.error``.
        """
        what = f"{method} {redact_url(url)}"

        def attempt() -> httpx.Response:
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                raise Retryable(self.error(f"{what}: {_transport_message(exc)}",
                                           retriable=True)) from None
            if classify is not None:
                classify(response)
            if response.status_code in retry_status:
                raise Retryable(self.error(describe_response(response), retriable=True),
                                retry_after(response))
            if response.status_code >= 400:
                raise self.error(describe_response(response))
            return response

        return call_with_retries(attempt, options=self.options.retry, stop=self.stop,
                                 on_retry=self._on_retry(what))

    @contextmanager
    def download(
        self, url: str | Callable[[], str], *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        classify: Callable[[httpx.Response], None] | None = None,
        on_response: Callable[[httpx.Response], None] | None = None,
        resume: bool = True,
    ) -> Iterator[Iterator[bytes]]:
        """Stream a GET, resuming across drops and stalls; yields an iterator of chunks.

        ``url`` may be a callable returning a fresh URL (presigned links that expire): it is
        called again after a 403/401 from the storage or a dropped connection.
        ``classify(response)`` may raise a final error for known statuses before the body is
        read. ``on_response`` sees the first successful response (headers such as
        Content-Disposition).
        """
        yield _Download(self, url, params, headers, classify, on_response, resume)


class _ShortBody(Exception):
    pass


class _Download:
    def __init__(self, client: HttpClient, url: str | Callable[[], str],
                 params: dict[str, Any] | None, headers: dict[str, str] | None,
                 classify: Callable[[httpx.Response], None] | None,
                 on_response: Callable[[httpx.Response], None] | None, resume: bool) -> None:
        self.client = client
        self.url_source = url
        self.params = params
        self.headers = headers or {}
        self.classify = classify
        self.on_response = on_response
        self.resume = resume
        self.offset = 0
        self.total: int | None = None
        self._sha = hashlib.sha256()  # of the bytes delivered so far, to check a re-read prefix
        self._url: str | None = None
        self._seen_response = False
        self._encoded = False
        self.resumes = 0
        self.failures = 0
        self._progress_mark = 0
        self._refresh = False

    def _current_url(self, refresh: bool = False) -> str:
        if callable(self.url_source):
            if self._url is None or refresh:
                self._url = self.url_source()
            return self._url
        return self.url_source

    def __iter__(self) -> Iterator[bytes]:
        options = self.client.options.retry
        what = f"GET {redact_url(self._current_url())}"
        attempts = retrying(options, stop=self.client.stop, on_retry=self._on_retry(what),
                            retry_on=(httpx.TransportError, _ShortBody, Retryable),
                            failures=lambda: self.failures)
        try:
            for attempt in attempts:
                with attempt:
                    yield from self._resume()
        except (httpx.TransportError, _ShortBody, Retryable) as exc:
            raise self.client.error(
                f"{what}: {_failure_message(exc)} (gave up after {self.failures} tries, "
                f"{self.offset} bytes received)", retriable=True,
            ) from None

    def _resume(self) -> Iterator[bytes]:
        """One attempt; a failure is counted (afresh when the stream moved on since the last
        one) and decides whether the next attempt asks for a fresh URL."""
        url = self._current_url(self._refresh)
        self._refresh = False
        try:
            yield from self._attempt(url)
        except (httpx.TransportError, _ShortBody, Retryable) as exc:
            if self.offset > self._progress_mark:
                self.failures = 0  # the stream moved on since the last failure: a fresh budget
            self._progress_mark = self.offset
            self.failures += 1
            self._refresh = callable(self.url_source) and not isinstance(exc, _ShortBody)
            raise

    def _on_retry(self, what: str) -> Callable[[int, BaseException, float], None]:
        report = self.client._on_retry(what)

        def count(failures: int, exc: BaseException, delay: float) -> None:
            self.resumes += 1
            report(failures, exc, delay)
        return count

    def _attempt(self, url: str) -> Iterator[bytes]:
        headers = dict(self.headers)
        # Range offsets count bytes on the wire: after a content-encoded (gzip...) response the
        # decoded offset means nothing to the server, so re-read and skip instead.
        if self.resume and self.offset > 0 and not self._encoded:
            headers["Range"] = f"bytes={self.offset}-"
        with self.client._client.stream("GET", url, params=self.params, headers=headers) as resp:
            if not self._accept(resp):
                return  # asked for a range past the end of a log read whole
            skip, expected_end = self._extent(resp)
            yield from self._chunks(resp, skip)
        if expected_end is not None and self.offset < expected_end:
            raise _ShortBody(f"connection closed after {self.offset} of {expected_end} bytes")
        if expected_end is not None and self.offset > expected_end:
            raise self.client.error(
                f"received {self.offset} bytes but Content-Length said {expected_end}"
            )

    def _accept(self, resp: httpx.Response) -> bool:
        """Raise for an error status (Retryable when it may pass); False for a 416 after the
        whole log was read."""
        if resp.status_code in (401, 403) and callable(self.url_source) and self._seen_response:
            # A presigned link expired mid-export: ask for a fresh one.
            raise Retryable(describe_response_head(resp), retry_after(resp))
        if self.classify is not None:
            self.classify(resp)
        if resp.status_code in RETRIABLE_STATUS:
            raise Retryable(describe_response_head(resp), retry_after(resp))
        if resp.status_code == 416 and self.total is not None and self.offset >= self.total:
            return False
        if resp.status_code >= 400:
            raise self.client.error(describe_response_head(resp))
        if not self._seen_response:
            self._seen_response = True
            if self.on_response is not None:
                self.on_response(resp)
        return True

    def _extent(self, resp: httpx.Response) -> tuple[int, int | None]:
        """(bytes of this body already delivered, the offset the body should end at if known)."""
        encoded = "content-encoding" in resp.headers
        self._encoded = self._encoded or encoded
        length = resp.headers.get("Content-Length")
        skip = 0
        if resp.status_code == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != self.offset:
                raise self.client.error(
                    f"server answered Range bytes={self.offset}- with "
                    f"{resp.headers.get('Content-Range')!r}"
                )
            expected_end = self.offset + int(length) if length and not encoded else None
        else:
            skip = self.offset  # server ignored Range or this is a re-read: skip the prefix
            expected_end = int(length) if length and not encoded else None
        if expected_end is not None:
            if self.total is not None and expected_end != self.total:
                raise self.client.error(
                    f"log size changed while reading ({self.total} then {expected_end} bytes)"
                )
            self.total = expected_end
        return skip, expected_end

    def _chunks(self, resp: httpx.Response, skip: int) -> Iterator[bytes]:
        """The body's new bytes: its first ``skip`` bytes were delivered before, so they are
        checked against what was delivered (sha256) and dropped."""
        prefix = hashlib.sha256()
        # Chunks as they arrive (at most one network read each): re-chunking to a fixed size
        # here would lose up to that many bytes of progress on every drop.
        for chunk in resp.iter_bytes():
            if skip:
                take = min(skip, len(chunk))
                prefix.update(chunk[:take])
                skip -= take
                chunk = chunk[take:]
                if skip == 0 and prefix.hexdigest() != self._sha.hexdigest():
                    raise self.client.error("log changed at the source while re-reading it")
                if not chunk:
                    continue
            self._sha.update(chunk)
            self.offset += len(chunk)
            yield chunk
        if skip:
            raise _ShortBody(f"re-read ended after {self.offset - skip} bytes, before "
                             f"{self.offset}")


def describe_response_head(response: httpx.Response) -> str:
    """Like describe_response for a streamed response: reads at most a small error body."""
    if response.status_code >= 400:
        try:
            response.read()
        except httpx.HTTPError:
            pass
    return describe_response(response)


def _content_range_start(value: str | None) -> int | None:
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _failure_message(exc: BaseException) -> str:
    return str(exc.error) if isinstance(exc, Retryable) else _transport_message(exc)


def _transport_message(exc: BaseException) -> str:
    kind = {
        httpx.ConnectError: "connection refused or unreachable",
        httpx.ConnectTimeout: "connect timed out",
        httpx.ReadTimeout: "stream stalled (read timeout)",
        httpx.RemoteProtocolError: "connection closed mid-response",
        httpx.ReadError: "connection reset",
    }
    for cls, text in kind.items():
        if isinstance(exc, cls):
            return redact(f"{text}: {exc}") if str(exc) else text
    return redact(str(exc)) or type(exc).__name__


__all__ = ["AuthConfig", "BasicAuth", "HttpClient", "HttpOptions", "RETRIABLE_STATUS",
           "describe_response", "json_object", "register_secret", "retry_after"]
