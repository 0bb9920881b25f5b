"""Sources that lie: lengths, Content-Range, links swapped between refreshes, redirects to other
hosts, storage errors echoing the presigned credentials, bodies that trickle or never end,
invalid gzip, redirect loops. Every case goes through ``logarchive export`` against raw-socket
servers that control every byte, and asserts what the user sees: what was archived (sha256) or
that nothing was, the exit status, no secret in any output, no traceback."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("logarchive_rest")
pytest.importorskip("logarchive_obs")

from logarchive.testing.rawsocket import RawResponder, http_response  # noqa: E402
from logarchive.testing.servers import LoopbackServer  # noqa: E402
from logarchive_testsupport.archives import write_config  # noqa: E402
from logarchive_testsupport.processes import EXE  # noqa: E402

LOG = b"".join(f"2026-03-13T10:00:{i % 60:02d}.000Z [INFO] step {i} loss=0.{i:04d}\n".encode()
               for i in range(4000))
FAST = {"connect_timeout": 2, "read_timeout": 5,
        "retry": {"max_retries": 2, "backoff_initial": 0.01, "backoff_max": 0.02}}
ETAG = '"5f1c2a8b9d7e6f5a"'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rest_config(tmp_path: Path, base_url: str, **source: Any) -> Path:
    document = {
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1},
        "sources": {"api": {"type": "rest", "base_url": base_url, "url": "/logs/{run_id}",
                            "runs": [{"run_id": "run-1"}], "http": FAST, **source}},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{source}/{run_id}.{ext}"}},
    }
    return write_config(tmp_path / "logarchive.toml", document)


def export(config: Path, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([EXE, *args, "export", "-c", str(config)], capture_output=True,
                          text=True, timeout=240, env={**os.environ, **(env or {})})


def archived(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "archive"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and not p.name.startswith(".")} if root.exists() else {}


def ledger_text(tmp_path: Path) -> str:
    texts = []
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal"):
        file = tmp_path / "state" / name
        if file.exists():
            texts.append(file.read_bytes().decode("latin-1"))
    return "\n".join(texts)


def ledger_status(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "state" / "ledger.sqlite3") as db:
        return {key: status for key, status in
                db.execute("SELECT run_key, status FROM deliveries")}


def assert_clean_failure(result: subprocess.CompletedProcess[str], tmp_path: Path,
                         *expected: str) -> str:
    """Exit 1, nothing archived, the run failed in the ledger, each ``expected`` text in the
    output, no traceback. Returns the output."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert archived(tmp_path) == {}
    assert set(ledger_status(tmp_path).values()) == {"failed"}
    for text in expected:
        assert text in output, output
    return output


def response(status: str, body: bytes, headers: dict[str, str], *, cut: int | None = None,
             length: int | None = None) -> bytes:
    """An HTTP/1.1 answer whose Content-Length is ``length`` (default: the body's), cut after
    ``cut`` body bytes (the connection then closes)."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(body) if length is None else length}",
             "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + (body if cut is None else body[:cut])


# --- lengths and Content-Range ----------------------------------------------------------------

@pytest.mark.scenario(
    "a source that lies about lengths and ranges",
    "raw-socket log servers: a Content-Length larger than the body, a 206 to a request "
    "without Range (bytes 0-999 of the log), a resume answered with the wrong Content-Range "
    "start, end or total, an unknown total (*), a 200 whose Content-Range names a part, or a "
    "Content-Length that "
    "disagrees with it: never archived as complete (exit 1, nothing archived, the run failed in "
    "the ledger, no traceback), or resumed to the whole log (sha256 equal)",
)
@pytest.mark.parametrize("case", [
    "content-length-lies", "206-without-range", "wrong-start", "wrong-end", "wrong-total",
    "unknown-total", "length-disagrees", "200-with-partial-range",
])
def test_lying_lengths_are_never_archived(tmp_path: Path, case: str) -> None:
    first_cut = 1000
    first = response("200 OK", LOG, {"ETag": ETAG}, cut=first_cut)
    rest = LOG[first_cut:]
    total = len(LOG)
    answers = {
        "content-length-lies": [response("200 OK", LOG[:first_cut], {}, length=total)],
        "206-without-range": [response("206 Partial Content", LOG[:first_cut],
                                       {"Content-Range": f"bytes 0-{first_cut - 1}/{total}"})],
        "wrong-start": [first, response("206 Partial Content", LOG, {
            "ETag": ETAG, "Content-Range": f"bytes 0-{total - 1}/{total}"})],
        "wrong-end": [first, response("206 Partial Content", rest, {
            "ETag": ETAG, "Content-Range": f"bytes {first_cut}-{total + 99}/{total + 100}"})],
        "wrong-total": [first, response("206 Partial Content", rest, {
            "ETag": ETAG, "Content-Range": f"bytes {first_cut}-{total - 1}/{total * 2}"})],
        "unknown-total": [first, response("206 Partial Content", rest, {
            "ETag": ETAG, "Content-Range": f"bytes {first_cut}-{total - 1}/*"})],
        "length-disagrees": [first, response("206 Partial Content", rest[:500], {
            "ETag": ETAG, "Content-Range": f"bytes {first_cut}-{total - 1}/{total}"})],
        # Found by review: a 200 whose Content-Range names a part was archived as the log.
        "200-with-partial-range": [response("200 OK", LOG[:first_cut], {
            "Content-Range": f"bytes 0-{first_cut - 1}/{total}"})],
    }[case]
    with RawResponder(answers) as server:
        result = export(rest_config(tmp_path, server.url))
    assert_clean_failure(result, tmp_path)


@pytest.mark.scenario(
    "partial answers resumed to the whole log",
    "a 206 (bytes 0-999 of the log) to a request without Range, then resumes each answered "
    "with a shorter window than asked (1000 bytes at a time): resumed with Range and If-Range "
    "on the ETag until the declared total, archive sha256 equal to the source; the manifest "
    "records the declared size and ETag",
)
def test_partial_answers_are_resumed_to_the_declared_total(tmp_path: Path) -> None:
    window = 1000
    total = len(LOG)
    answers = []
    for start in range(0, total, window):
        end = min(start + window, total) - 1
        answers.append(response("206 Partial Content", LOG[start:end + 1], {
            "ETag": ETAG, "Content-Range": f"bytes {start}-{end}/{total}"}))
    with RawResponder(answers) as server:
        result = export(rest_config(tmp_path, server.url))
        requests = server.requests
    assert result.returncode == 0, result.stdout + result.stderr
    files = archived(tmp_path)
    assert sha(files["api/run-1.txt"]) == sha(LOG)
    heads = [r.head.decode() for r in requests]
    assert len(heads) == len(answers)
    assert "Range:" not in heads[0]
    for n, head in enumerate(heads[1:], 1):
        assert f"Range: bytes={n * window}-" in head and f"If-Range: {ETAG}" in head
    manifest = json.loads(files["api/run-1.txt.manifest.json"])
    assert manifest["source_declared"] == {"size": total, "etag": ETAG}
    assert manifest["source_bytes"]["size"] == total


@pytest.mark.scenario(
    "a resume without a validator re-reads and checks the prefix",
    "the log server sends no ETag and drops the connection after 1000 bytes: the resume does "
    "not use Range (nothing proves it is the same object) but re-reads from the start, checks "
    "the first 1000 bytes against what was delivered, archive sha256 equal",
)
def test_resume_without_etag_rereads_and_checks_the_prefix(tmp_path: Path) -> None:
    answers = [response("200 OK", LOG, {"Accept-Ranges": "bytes"}, cut=1000),
               response("200 OK", LOG, {"Accept-Ranges": "bytes"})]
    with RawResponder(answers) as server:
        result = export(rest_config(tmp_path, server.url))
        heads = [r.head.decode() for r in server.requests]
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha(archived(tmp_path)["api/run-1.txt"]) == sha(LOG)
    assert len(heads) == 2 and not any("Range:" in head for head in heads)


# --- OBS links swapped between refreshes --------------------------------------------------------

JOB = "2cd88daa-31a4-40a8-a58f-d186b0e93e4f"
ACCESS_KEY = "AKIAOBSLINKACCESS7Q"


class SwappedLinks:
    """The storage side of the fake ModelArts API: the first link names object A, every
    refreshed one names object B (same size, other bytes) on the raw-socket storage."""

    def __init__(self) -> None:
        self.url = ""
        self.objects: dict[str, bytes] = {}
        self.issued: list[str] = []

    def sign(self, key: str) -> str:
        name = "A" if not self.issued else "B"
        signature = f"sig{len(self.issued)}-9f8e7d6c5b4a39281706"
        self.issued.append(signature)
        return (f"{self.url}/bucket/{name}.log?AWSAccessKeyId={ACCESS_KEY}&Expires=1900000000"
                f"&Signature={signature}")


def obs_config(tmp_path: Path, api_url: str) -> Path:
    from logarchive_obs.testing import TOKEN

    document = {
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1},
        "sources": {"modelarts": {"type": "obs", "endpoint": api_url, "project_id": "0a1b2c",
                                  "token": TOKEN, "training_jobs": [JOB], "http": FAST}},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{source}/{task_id}.{ext}"}},
    }
    return write_config(tmp_path / "logarchive.toml", document)


@pytest.mark.scenario(
    "an OBS link refreshed mid-download to another object of the same size",
    "the storage drops the connection after 128000 bytes of object A; the refreshed link "
    "serves object B of the same size (a 206 with B's ETag to the If-Range resume, or B whole "
    "without ETags): never A[:128000] + B[128000:]: exit 1, nothing archived, no traceback, "
    "no signature or access key in any output",
)
@pytest.mark.parametrize("etags", [True, False], ids=["etag", "no-etag"])
def test_link_swapped_to_another_object_is_never_spliced(tmp_path: Path, etags: bool) -> None:
    from logarchive_obs.testing import ModelArtsAPI

    a = LOG * 60
    b = a.replace(b"loss", b"LOSS")
    assert len(a) == len(b) > 128000
    cut = 128000
    headers_a = {"ETag": '"aaaa1111"'} if etags else {}
    headers_b = {"ETag": '"bbbb2222"'} if etags else {}
    second = (response("206 Partial Content", b[cut:], {
        **headers_b, "Content-Range": f"bytes {cut}-{len(b) - 1}/{len(b)}"}) if etags
        else response("200 OK", b, headers_b))
    links = SwappedLinks()
    api = ModelArtsAPI("0a1b2c", links)  # type: ignore[arg-type]
    api.add(JOB, {"worker-0": a}, tasks=["worker-0"])
    with RawResponder([response("200 OK", a, headers_a, cut=cut), second]) as storage, \
            LoopbackServer(api) as server:
        links.url, api.url = storage.url, server.url
        result = export(obs_config(tmp_path, server.url), "-v")
    output = assert_clean_failure(result, tmp_path, "changed")
    assert len(links.issued) >= 2, "the link was never refreshed"
    for secret in [ACCESS_KEY, *links.issued]:
        assert secret not in output + ledger_text(tmp_path)


# --- credentials and redirects ------------------------------------------------------------------

SECRET_HEADER = "hdr-secret-3c4d5e6f7a8b"
AUTHS = {
    "bearer": ({"bearer": "bearer-secret-1a2b3c4d5e"}, "bearer-secret-1a2b3c4d5e"),
    "basic": ({"basic": {"username": "svc", "password": "basic-pass-6f7e8d"}},
              "basic-pass-6f7e8d"),
    "cookie": ({"cookie": {"session": "cookie-secret-9a8b7c"}}, "cookie-secret-9a8b7c"),
}


@pytest.mark.scenario(
    "credentials redirected to another host",
    "the log API answers 302 to a presigned link on another host (another port): bearer, "
    "basic, session cookie and a secret auth header reach the first host and none of them "
    "(nor an Authorization or Cookie header) the second; archive sha256 equal; no secret in "
    "stdout or stderr at -vv",
)
@pytest.mark.parametrize("kind", sorted(AUTHS))
def test_credentials_never_follow_a_redirect_to_another_host(tmp_path: Path, kind: str) -> None:
    auth, secret = AUTHS[kind]
    with RawResponder([response("200 OK", LOG, {})]) as storage:
        location = f"{storage.url}/bucket/run-1.log?X-Amz-Signature=abcdef0123456789"
        with RawResponder([response("302 Found", b"", {"Location": location})]) as api:
            config = rest_config(tmp_path, api.url,
                                 auth={**auth, "headers": {"X-Log-Key": SECRET_HEADER}})
            result = export(config, "-vv")
            first = api.requests[0].head.decode()
        second = storage.requests[0].head.decode()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert sha(archived(tmp_path)["api/run-1.txt"]) == sha(LOG)
    assert SECRET_HEADER in first and ("Authorization:" in first or "Cookie:" in first)
    for leaked in (secret, SECRET_HEADER, "Authorization:", "Cookie:", "X-Log-Key"):
        assert leaked not in second, second
    assert "Traceback" not in output
    assert secret not in output and SECRET_HEADER not in output


@pytest.mark.scenario(
    "the ModelArts token redirected to another host",
    "the ModelArts API answers the job request with a 307 to another host: the X-Auth-Token "
    "is sent to the configured endpoint only, never to the other host",
)
def test_obs_token_never_follows_a_redirect(tmp_path: Path) -> None:
    from logarchive_obs.testing import TOKEN

    with RawResponder([response("404 Not Found", b"{}", {})]) as other:
        moved = response("307 Temporary Redirect", b"", {"Location": f"{other.url}/v2/x"})
        with RawResponder([moved]) as api:
            result = export(obs_config(tmp_path, api.url))
            first = api.requests[0].head.decode()
        heads = [r.head.decode() for r in other.requests]
    assert TOKEN in first
    assert heads and not any(TOKEN in h or "X-Auth-Token" in h for h in heads)
    assert "Traceback" not in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr


STORAGE_KEY = "AKIAECHOEDACCESSKEY1"
STORAGE_SIGNATURE = "Zm9vYmFyc2lnbmF0dXJlZWNob2Vk"


@pytest.mark.scenario(
    "a storage error echoing the presigned credentials",
    "the log API redirects to a presigned link whose storage answers 403 with an S3 XML body "
    "echoing <AWSAccessKeyId>, <SignatureProvided>, <StringToSign> and <CanonicalRequest>: "
    "exit 1 with the 403 named, zero occurrences of the access key or the signature in "
    "stdout, stderr (-vv) or the ledger, no traceback",
)
def test_storage_error_echoing_presigned_credentials_is_masked(tmp_path: Path) -> None:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>'
            f"<Message>The request signature we calculated does not match</Message>"
            f"<AWSAccessKeyId>{STORAGE_KEY}</AWSAccessKeyId>"
            f"<StringToSign>GET\n\n\n1900000000\n/bucket/run-1.log</StringToSign>"
            f"<SignatureProvided>{STORAGE_SIGNATURE}</SignatureProvided>"
            f"<CanonicalRequest>GET /bucket/run-1.log AWSAccessKeyId={STORAGE_KEY}"
            f"</CanonicalRequest>"
            f"<RequestId>4442587FB7D0A2F9</RequestId></Error>").encode()
    with RawResponder([response("403 Forbidden", body,
                                {"Content-Type": "application/xml"})]) as storage:
        location = (f"{storage.url}/bucket/run-1.log?AWSAccessKeyId={STORAGE_KEY}"
                    f"&Expires=1900000000&Signature={STORAGE_SIGNATURE}")
        with RawResponder([response("302 Found", b"", {"Location": location})]) as api:
            result = export(rest_config(tmp_path, api.url), "-vv")
    output = assert_clean_failure(result, tmp_path, "403", "SignatureDoesNotMatch")
    everything = output + ledger_text(tmp_path)
    assert STORAGE_KEY not in everything and STORAGE_SIGNATURE not in everything


# --- bounds on a source stream ----------------------------------------------------------------

def trickle() -> Iterator[bytes]:
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"
    for _ in range(600):
        yield b"x"
        time.sleep(1)


def endless() -> Iterator[bytes]:
    yield b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    line = b"2026-03-13T10:00:00.000Z [INFO] again and again\n" * 1000
    for _ in range(100_000):
        yield line


@pytest.mark.scenario(
    "a source that trickles or never ends",
    "a 1 byte/s body with min_bytes_per_second = 100 over min_rate_window = 3 s, and an endless "
    "body with max_log_bytes = 1 MiB: the run fails with the key named, exit 1, nothing "
    "archived, no traceback (keys of every source, enforced in core)",
)
@pytest.mark.parametrize("body,limits,key", [
    (trickle, {"min_bytes_per_second": 100, "min_rate_window": 3}, "min_bytes_per_second"),
    (endless, {"max_log_bytes": 1 << 20}, "max_log_bytes"),
], ids=["trickle", "endless"])
def test_stream_bounds_fail_the_run_with_the_key_named(tmp_path: Path, body: Any,
                                                       limits: dict[str, Any], key: str) -> None:
    with RawResponder([body]) as server:
        result = export(rest_config(tmp_path, server.url, **limits))
    assert_clean_failure(result, tmp_path, f"sources.api.{key}")


# --- invalid gzip, redirect loops --------------------------------------------------------------

def bad_gzip() -> bytes:
    return response("200 OK", b"\x1f\x8b\x08\x00garbage that is not deflate",
                    {"Content-Encoding": "gzip"})


@pytest.mark.scenario(
    "invalid gzip from a proxy",
    "the first answer is Content-Encoding: gzip with a body that is not gzip (a proxy's "
    "mangling): retried as transient, the second answer (valid gzip) archived with sha256 "
    "equal; when every answer is invalid: exit 1, one line naming the run, no traceback",
)
def cut_gzip() -> bytes:
    """The gzip of the log's first 3000 bytes, flushed but without its final block and trailer:
    a stream cut at a flush point, whose Content-Length matches the bytes sent."""
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    body = compressor.compress(LOG[:3000]) + compressor.flush(zlib.Z_FULL_FLUSH)
    return response("200 OK", body, {"Content-Encoding": "gzip"})


@pytest.mark.parametrize("recovers", [True, False], ids=["recovers", "always-bad"])
def test_invalid_gzip_is_retried_as_transient(tmp_path: Path, recovers: bool) -> None:
    good = response("200 OK", gzip.compress(LOG), {"Content-Encoding": "gzip"})
    answers = [bad_gzip(), good] if recovers else [bad_gzip()]
    with RawResponder(answers) as server:
        result = export(rest_config(tmp_path, server.url))
        count = len(server.requests)
    if recovers:
        assert result.returncode == 0, result.stdout + result.stderr
        assert sha(archived(tmp_path)["api/run-1.txt"]) == sha(LOG)
        assert count == 2
    else:
        output = assert_clean_failure(result, tmp_path, "decoded", "run-1")
        assert count == 1 + FAST["retry"]["max_retries"]
        assert "Traceback" not in output


def test_gzip_cut_before_its_end_marker_is_never_archived(tmp_path: Path) -> None:
    """Found by review: a gzip body cut at a flush point (no final block, no trailer) was
    decoded as complete and 3000 of the log's bytes archived as the whole log."""
    good = response("200 OK", gzip.compress(LOG), {"Content-Encoding": "gzip"})
    with RawResponder([cut_gzip(), good]) as server:
        result = export(rest_config(tmp_path, server.url))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha(archived(tmp_path)["api/run-1.txt"]) == sha(LOG)
    (tmp_path / "again").mkdir()
    with RawResponder([cut_gzip()]) as server:
        result = export(rest_config(tmp_path / "again", server.url))
    assert_clean_failure(result, tmp_path / "again", "end marker", "run-1")


@pytest.mark.scenario(
    "a redirect loop",
    "the log server answers every request with a 302 to itself: exit 1, one error naming the "
    "run and the redirect loop, nothing archived, no traceback",
)
def test_redirect_loop_is_one_line(tmp_path: Path) -> None:
    with RawResponder([b""]) as server:
        server.script = [response("302 Found", b"", {"Location": f"{server.url}/logs/run-1"})]
        result = export(rest_config(tmp_path, server.url))
    output = assert_clean_failure(result, tmp_path, "redirect", "run-1")
    assert sum("redirect" in line for line in output.splitlines()) <= 2
