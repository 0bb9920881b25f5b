"""Shared HTTP machinery for sources and sinks (httpx).

- :class:`HttpOptions`: timeouts (connect, stall), TLS, retries: one config block every HTTP
  plugin exposes as-is.
- :class:`AuthConfig`: ``bearer | cookie | basic | headers`` with secrets that never print.
- :class:`HttpClient`: ``request`` with the core retry loop (connection errors, timeouts, 408,
  429, 5xx, ``Retry-After``, a body that fails to decode) and ``download``: a streaming GET
  that resumes a dropped or stalled stream (see :class:`_Download`), checks every
  ``Content-Length`` and ``Content-Range`` against what the source declared, and can ask for a
  fresh URL when a presigned one expires.
- Credentials never leave the origin they were configured for: the client's headers, its
  ``auth`` (bearer, basic, cookies, secret headers) are attached to a request only when its
  scheme, host and port are the configured base URL's (or, without one, the first request's);
  a redirect to another origin carries none of them, nor any header named like a credential.
- Every URL that reaches a log line or an error is redacted (no userinfo, no signature), and a
  response body quoted in an error is masked by the values of the link it answers.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from logarchive.errors import SourceError
from logarchive.lazyimport import rich_hidden
from logarchive.retry import (
    RetryOptions, Retryable, call_with_retries, parse_retry_after, retrying,
)
from logarchive.secrets import (
    SENSITIVE_HEADERS, RedactFilter, Secret, presigned_values, redact, redact_url, redact_with,
    register_secret,
)
from logarchive.sourcestream import Declared, SourceStream
from logarchive.version import __version__

with rich_hidden():  # not httpx's command-line client (rich, pygments)
    import httpx

USER_AGENT = f"logarchive/{__version__}"


# httpx logs every request URL at INFO (a presigned link with its signature): redact at the
# logger itself, so no handler (an embedder's, pytest's caplog) ever sees it raw.
class _NoHeaderValues(logging.Filter):
    """httpcore's debug trace (``-vv``) prints every header a server sends: a presigned link's
    access key echoed in an arbitrary header, or a short token inside a quoted parameter, would
    slip past redaction by value. Header events keep their name, never their values."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(("send_request_headers", "receive_response_headers")):
            record.msg, record.args = message.split(" ", 1)[0] + " (header values not logged)", None
        return True


for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2",
              "httpcore.proxy"):
    logging.getLogger(_name).addFilter(_NoHeaderValues())
    logging.getLogger(_name).addFilter(RedactFilter())
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_LOOP = "too many redirects (a redirect loop?)"


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

    def apply(self, headers: dict[str, str], cookies: dict[str, str]) -> None:
        """Add the credentials to ``headers`` and ``cookies``."""
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer.get_secret_value()}"
        for name, value in (self.cookie or {}).items():
            cookies[name] = value.get_secret_value()
        for name, value in (self.headers or {}).items():
            headers[name] = value.get_secret_value()
        if self.basic is not None:
            pair = f"{self.basic.username}:{self.basic.password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()


def retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response's JSON object, or a SourceError naming ``what`` (not JSON / not an object)."""
    try:
        document = response.json()
    except ValueError:
        raise SourceError(f"{what}: the response is not JSON") from None
    except RecursionError:
        raise SourceError(f"{what}: the response nests JSON deeper than can be read") from None
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
    return mask_quoted(response, f"{text}: {body}" if body else text)


def mask_quoted(response: httpx.Response, text: str) -> str:
    """``text`` (which quotes ``response``, its body say) redacted, with the presigned values
    of the links that led to the response masked too."""
    return redact_with(text, link_values(response))


def link_values(response: httpx.Response) -> list[str]:
    """The presigned values of every URL that led to ``response`` (redirects included): what a
    storage error body may echo."""
    urls = [str(r.request.url) for r in (*response.history, response)]
    return [v for url in urls for v in presigned_values(url)]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


_ORIGIN = "logarchive.credential_origin"


class _OriginBound:
    """An httpx request hook (it runs for every hop of a redirect chain): attaches the
    configured headers and cookies to requests to the configured origin only, and strips them,
    and any header named like a credential, from a request to any other origin."""

    def __init__(self, base_url: str, headers: dict[str, str], cookies: dict[str, str]) -> None:
        self.origin = _origin(httpx.URL(base_url)) if base_url else None
        self.headers = headers
        self.names = {name.lower() for name in headers} | SENSITIVE_HEADERS
        self.cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())

    def __call__(self, request: httpx.Request) -> None:
        origin = request.extensions.setdefault(_ORIGIN, self.origin or _origin(request.url))
        if _origin(request.url) == origin:
            for name, value in self.headers.items():
                request.headers.setdefault(name, value)
            if self.cookie:
                jar = request.headers.get("Cookie")
                request.headers["Cookie"] = f"{jar}; {self.cookie}" if jar else self.cookie
            return
        for name in list(request.headers.keys()):
            if name.lower() in self.names:
                del request.headers[name]


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
        bound = dict(headers or {})
        cookies: dict[str, str] = {}
        if auth is not None:
            auth.apply(bound, cookies)
        self._client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(self.options.read_timeout, connect=self.options.connect_timeout),
            verify=self.options.verify,
            follow_redirects=True,
            event_hooks={"request": [_OriginBound(base_url, bound, cookies)]},
        )
        self._client.headers.pop("Accept", None)  # httpx's */* default: a configured one wins

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
            except httpx.TooManyRedirects:
                raise self.error(f"{what}: {REDIRECT_LOOP}") from None
            except (httpx.TransportError, httpx.DecodingError) as exc:
                error = self.error(f"{what}: {_transport_message(exc)}", retriable=True)
                if isinstance(exc, httpx.TransportError):  # no answer at all: unreachable
                    error.endpoint = endpoint(exc)
                raise Retryable(error) from None
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
        size: int | None = None,
    ) -> Iterator[SourceStream]:
        """Stream a GET, resuming across drops and stalls; yields a :class:`SourceStream` of
        chunks whose ``declared`` holds the length and ETag the server announced.

        ``url`` may be a callable returning a fresh URL (presigned links that expire): it is
        called again after a 403/401 from the storage or a dropped connection.
        ``classify(response)`` may raise a final error for known statuses before the body is
        read. ``on_response`` sees the first successful response (headers such as
        Content-Disposition). ``size``: the length the source declared elsewhere (a listing's
        file size); a response that disagrees is an error.
        """
        download = _Download(self, url, params, headers, classify, on_response, resume, size)
        yield SourceStream(download, download.declared)


class _ShortBody(Exception):
    pass


class _Download:
    """One log's download, over as many requests as drops and refreshed links take.

    - Every response is checked: a ``206`` must carry a ``Content-Range`` whose start is the
      offset asked for (0 for a request without ``Range``), whose end matches its
      ``Content-Length`` and whose total matches every length declared before
      (``Content-Length`` of a ``200``, earlier totals, the caller's ``size``).
    - A body that ends before the declared total is resumed; the download ends only at the
      declared total (or, with no length declared, at the end of a complete response).
    - A resume asks for ``Range: bytes=N-`` only with the first response's strong ``ETag`` as
      ``If-Range``, and the ``206`` must carry that same ETag: the rest of the same object, not
      of another one behind a refreshed link. Without an ETag (or after a content-encoded
      response) it re-reads from the start and checks that the first N bytes are the ones
      already delivered (sha256) before passing on the rest.
    """

    def __init__(self, client: HttpClient, url: str | Callable[[], str],
                 params: dict[str, Any] | None, headers: dict[str, str] | None,
                 classify: Callable[[httpx.Response], None] | None,
                 on_response: Callable[[httpx.Response], None] | None, resume: bool,
                 size: int | None) -> None:
        self.client = client
        self.url_source = url
        self.params = params
        self.headers = headers or {}
        self.classify = classify
        self.on_response = on_response
        self.resume = resume
        self.declared = Declared(size=size)
        self.offset = 0
        self._sha = hashlib.sha256()  # of the bytes delivered so far, to check a re-read prefix
        self._url: str | None = None
        self._seen_response = False
        self._encoded = False
        self.resumes = 0
        self.failures = 0
        self._progress_mark = 0
        self._refresh = False

    @property
    def total(self) -> int | None:
        return self.declared.size

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
                            retry_on=_TRANSIENT, failures=lambda: self.failures)
        try:
            for attempt in attempts:
                with attempt:
                    yield from self._resume()
        except _TRANSIENT as exc:
            raise self.client.error(
                f"{what}: {_failure_message(exc)} (gave up after {self.failures} tries, "
                f"{self.offset} bytes received)", retriable=True,
            ) from None
        except httpx.TooManyRedirects:
            raise self.client.error(f"{what}: {REDIRECT_LOOP}") from None

    def _resume(self) -> Iterator[bytes]:
        """One attempt; a failure is counted (afresh when the stream moved on since the last
        one) and decides whether the next attempt asks for a fresh URL."""
        url = self._current_url(self._refresh)
        self._refresh = False
        try:
            yield from self._attempt(url)
        except _TRANSIENT as exc:
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

    def _request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        # Range offsets count bytes on the wire: after a content-encoded (gzip...) response the
        # decoded offset means nothing to the server, so re-read and skip instead. And only the
        # same object may be resumed: without a strong ETag to send as If-Range, re-read.
        if self.resume and self.offset > 0 and not self._encoded and self.declared.etag:
            headers["Range"] = f"bytes={self.offset}-"
            headers["If-Range"] = self.declared.etag
        return headers

    def _attempt(self, url: str) -> Iterator[bytes]:
        headers = self._request_headers()
        with self.client._client.stream("GET", url, params=self.params, headers=headers) as resp:
            if not self._accept(resp):
                return  # asked for a range past the end of a log read whole
            skip, end = self._extent(resp, "Range" in headers)
            yield from self._chunks(resp, skip)
        self._check_end(end)

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
            self.declared.etag = _strong_etag(resp.headers.get("ETag"))
            if self.on_response is not None:
                self.on_response(resp)
        return True

    def _refuse_partial_range(self, resp: httpx.Response, length: int | None) -> None:
        """A whole-log answer (200) that carries a Content-Range naming less than the whole
        (``bytes 0-999/8090``) says its body is a part: never archive it as the log."""
        header = resp.headers.get("Content-Range")
        if header is None:
            return
        start, end, total = _content_range(header)
        if not (start == 0 and total is not None and end + 1 == total
                and length in (None, total)):
            raise self.client.error(f"the server answered {resp.status_code} with Content-Range "
                                    f"{header!r}: the body is not the whole log")

    def _extent(self, resp: httpx.Response, ranged: bool) -> tuple[int, int | None]:
        """(bytes of this body already delivered, the offset the body should end at if known),
        after checking the response's lengths and ETag against what was declared before."""
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        encoded = encoding not in ("", "identity")
        self._encoded = self._encoded or encoded
        self._check_etag(resp)
        length = _int_header(resp.headers.get("Content-Length"))
        if resp.status_code != 206:
            # The whole log (a server that ignored Range, or a re-read): skip what was delivered.
            self._refuse_partial_range(resp, length)
            if length is not None and not encoded:
                self._declare_total(length, "Content-Length")
                return self.offset, length
            return self.offset, None
        if encoded:
            raise self.client.error(f"a content-encoded ({encoding}) partial response (206) "
                                    "cannot be checked against the log's length")
        start, end, total = _content_range(resp.headers.get("Content-Range"))
        expected_start = self.offset if ranged else 0
        # A total of "*" could never prove the log complete: refused like a wrong range.
        if start != expected_start or end < start or total is None or end >= total:
            asked = f"Range bytes={self.offset}-" if ranged else "a request without Range"
            raise self.client.error(f"the server answered {asked} with Content-Range "
                                    f"{resp.headers.get('Content-Range')!r}")
        if length is not None and length != end - start + 1:
            raise self.client.error(f"Content-Length {length} disagrees with Content-Range "
                                    f"{resp.headers.get('Content-Range')!r}")
        self._declare_total(total, "Content-Range")
        return self.offset - start, end + 1

    def _check_etag(self, resp: httpx.Response) -> None:
        """A response after the first must be of the same object (same strong ETag)."""
        known = self.declared.etag
        if known is None or self.offset == 0:
            return
        etag = _strong_etag(resp.headers.get("ETag"))
        if etag != known:
            raise self.client.error(
                f"the log changed at the source while reading it (ETag {known} then "
                f"{etag or 'none'}); nothing was committed")

    def _declare_total(self, total: int, header: str) -> None:
        known = self.declared.size
        if known is not None and known != total:
            raise self.client.error(
                f"{header} says the log is {total} bytes but {known} bytes were declared "
                "before; nothing was committed")
        self.declared.size = total

    def _check_end(self, end: int | None) -> None:
        """After a body: resume (_ShortBody) when it ended early, raise when it ran long."""
        for limit, what in ((end, "its Content-Range or Content-Length"),
                            (self.total, "the declared length")):
            if limit is not None and self.offset > limit:
                raise self.client.error(f"received {self.offset} bytes but {what} said {limit}")
        for limit in (end, self.total):
            if limit is not None and self.offset < limit:
                raise _ShortBody(f"connection closed after {self.offset} of {self.total or limit}"
                                 " bytes")

    def _chunks(self, resp: httpx.Response, skip: int) -> Iterator[bytes]:
        """The body's new bytes: its first ``skip`` bytes were delivered before, so they are
        checked against what was delivered (sha256) and dropped."""
        prefix = hashlib.sha256()
        # Chunks as they arrive (at most one network read each): re-chunking to a fixed size
        # here would lose up to that many bytes of progress on every drop.
        for chunk in _decoded(resp):
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


_TRANSIENT = (httpx.TransportError, httpx.DecodingError, _ShortBody, Retryable)


def _decoded(resp: httpx.Response) -> Iterator[bytes]:
    """The body, gzip/deflate decoded here rather than by httpx, whose decoder accepts a
    compressed stream cut before its end marker as complete: such a body is short (retried like
    a dropped connection), never a whole log. Other codings go through httpx's decoders."""
    coding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in ("gzip", "x-gzip", "deflate"):
        yield from resp.iter_bytes()
        return
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or zlib header
    first = True
    for raw in resp.iter_raw():
        try:
            out = decoder.decompress(raw)
        except zlib.error as exc:
            if not (first and coding == "deflate"):
                raise httpx.DecodingError(f"invalid {coding} body: {exc}") from None
            decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without its zlib header
            out = decoder.decompress(raw)
        first = False
        if out:
            yield out
    if not decoder.eof:
        raise _ShortBody(f"the {coding} body ended before its end marker (a cut stream)")


def describe_response_head(response: httpx.Response) -> str:
    """Like describe_response for a streamed response: reads at most a small error body."""
    if response.status_code >= 400:
        try:
            response.read()
        except httpx.HTTPError:
            pass
    return describe_response(response)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _content_range(value: str | None) -> tuple[int, int, int | None]:
    """``bytes start-end/total`` -> (start, end, total or None for ``*``); -1s when invalid."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return -1, -2, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _strong_etag(value: str | None) -> str | None:
    """A strong ETag (usable in If-Range), or None (absent or weak ``W/``)."""
    value = (value or "").strip()
    return value if value.startswith('"') and value.endswith('"') and len(value) > 1 else None


def _failure_message(exc: BaseException) -> str:
    return str(exc.error) if isinstance(exc, Retryable) else _transport_message(exc)


def endpoint(exc: BaseException) -> str | None:
    """``host:port`` of the request a transport error happened on (None when unknown)."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return None
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return f"{url.host}:{port}" if port else url.host


def _transport_message(exc: BaseException) -> str:
    """What went wrong on the wire, naming the peer's ``host:port``."""
    kind = {
        httpx.ConnectError: "connection refused or unreachable",
        httpx.ConnectTimeout: "connect timed out",
        httpx.ReadTimeout: "stream stalled (read timeout)",
        httpx.RemoteProtocolError: "connection closed mid-response",
        httpx.ReadError: "connection reset",
        httpx.DecodingError: "the response body could not be decoded (invalid Content-Encoding)",
    }
    text = next((t for cls, t in kind.items() if isinstance(exc, cls)), "")
    where = endpoint(exc)
    if where:
        text = f"{text} at {where}" if text else f"network error at {where}"
    detail = str(exc)
    if not text:
        return redact(detail) or type(exc).__name__
    return redact(f"{text}: {detail}") if detail else redact(text)


__all__ = ["AuthConfig", "BasicAuth", "HttpClient", "HttpOptions", "RETRIABLE_STATUS",
           "describe_response", "json_object", "mask_quoted", "register_secret", "retry_after"]
