"""The masking rule: long secrets anywhere, short ones as whole values only, presigned link
values by value in what quotes the response, credential elements of storage error bodies."""

from __future__ import annotations

from logarchive.secrets import (
    MASK, MIN_SUBSTRING, presigned_values, redact, redact_with, register_secret,
)


def test_a_long_secret_is_masked_inside_any_text() -> None:
    register_secret("longsecret-77aa")
    assert redact("body said xxlongsecret-77aayy") == f"body said xx{MASK}yy"


def test_a_short_secret_is_masked_only_as_a_whole_value() -> None:
    short = "q7z"
    assert len(short) < MIN_SUBSTRING
    register_secret(short)
    assert redact(f"GET /log?user={short}&page=2") == f"GET /log?user={MASK}&page=2"
    assert redact(f"Cookie: sid={short}; theme=dark") == f"Cookie: sid={MASK}; theme=dark"
    assert redact(f"X-Pin: {short}") == f"X-Pin: {MASK}"
    assert redact("the word aq7zb stays") == "the word aq7zb stays"


def test_presigned_values_are_masked_by_value_without_being_registered() -> None:
    url = ("https://obs.example/b/k.log?AWSAccessKeyId=AKIAPRESIGNED000001&Expires=1900000000"
           "&Signature=c2lnbmF0dXJlLXZhbHVl&X-Amz-Credential=AKIAV4CRED0000000002/20260101/"
           "us-east-1/s3/aws4_request")
    values = presigned_values(url)
    assert {"AKIAPRESIGNED000001", "c2lnbmF0dXJlLXZhbHVl", "AKIAV4CRED0000000002"} <= set(values)
    echoed = "the key AKIAPRESIGNED000001 and AKIAV4CRED0000000002 signed c2lnbmF0dXJlLXZhbHVl"
    masked = redact_with(echoed, values)
    assert "AKIA" not in masked and "c2lnbmF0" not in masked
    assert redact(echoed) == echoed  # not registered for the rest of the process


def test_credential_elements_of_a_storage_error_body_are_masked() -> None:
    body = ("<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIAX</AWSAccessKeyId>"
            "<SignatureProvided>abc</SignatureProvided><StringToSign>GET\n/b/k</StringToSign>"
            "<RequestId>42</RequestId></Error>")
    masked = redact(body)
    assert "AKIAX" not in masked and ">abc<" not in masked and "GET\n/b/k" not in masked
    assert "<Code>SignatureDoesNotMatch</Code>" in masked and "<RequestId>42</RequestId>" in masked


def test_a_secret_echoed_percent_encoded_is_masked() -> None:
    """Found by review: a server echoing a URL encoded `_` as %5F and the key went unmasked."""
    register_secret("k3y-Secret_77+/=")
    for spelling in ("k3y-Secret_77+/=", "k3y-Secret%5F77%2B%2F%3D", "k3y-Secret_77%2b%2f%3d"):
        assert redact(f"error: {spelling} refused") == "error: *** refused"
    assert redact("k3y-Secret_78") == "k3y-Secret_78"  # another value stays readable


def test_library_header_traces_never_show_header_values() -> None:
    """Found by review: at -vv httpcore printed a presigned access key a server echoed in an
    arbitrary header, and a 4-character token inside `realm="..."`; header values are not
    logged, the event names are."""
    import io
    import logging

    import logarchive.http  # noqa: F401  (installs the filters on the library loggers)

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logger = logging.getLogger("httpcore.http11")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("receive_response_headers.complete return_value=%s",
                     "(b'HTTP/1.1', 401, [(b'WWW-Authenticate', b'Bearer realm=\"Qz7k\"'), "
                     "(b'X-Echo-Key', b'AKIAECHOED')])")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert buffer.getvalue() == "receive_response_headers.complete (header values not logged)\n"
