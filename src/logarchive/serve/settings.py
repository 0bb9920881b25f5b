"""The ``[serve]`` table: which archive ``logarchive serve`` answers from, where, and for whom.

Kept free of the web stack (Starlette, uvicorn) so the config loader can validate it without the
``[serve]`` extra installed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from logarchive.secrets import Secret

MIN_TOKEN_LENGTH = 16
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


class ServeConfig(BaseModel):
    """``[serve]``: a read-only HTTP server over one byte sink's archive (docs/serve.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sink: str = Field(description="The byte sink whose archive is served (a [sinks.NAME] of "
                      "this config).", examples=["archive"])
    listen: str = Field(default="127.0.0.1:8080", description="host:port to listen on "
                        "([::1]:8080 for IPv6; port 0: any free port, printed at start). Put a "
                        "TLS reverse proxy in front of anything but loopback.",
                        examples=["127.0.0.1:8080"])
    tokens: list[Secret] = Field(
        default_factory=list, description="Accepted tokens (Authorization: Bearer, or the "
        "session cookie). None configured: serve refuses to start.",
        examples=[["${LOGARCHIVE_SERVE_TOKEN}"]])
    refresh_seconds: float = Field(default=60, ge=1, description="How often the index of the "
                                   "archive's manifests is brought up to date.", examples=[60])
    session_hours: float = Field(default=12, gt=0, le=24 * 30, description="How long a browser "
                                 "login lasts.", examples=[12])
    secure_cookie: bool = Field(default=False, description="Mark the session cookie Secure "
                                "(set it behind a TLS proxy; requests that arrive as https get "
                                "it anyway).", examples=[True])

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if match is None or int(match["port"]) > 65535:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)")
        return value

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: list) -> list:
        """Empty tokens (``${VAR:-}`` with VAR unset) are dropped: a config shared with
        ``export`` need not set the variable; ``serve`` refuses to start with no token left."""
        kept = [t for t in value if t.get_secret_value()]
        for token in kept:
            if len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
                raise ValueError(f"a token must have at least {MIN_TOKEN_LENGTH} characters")
        return kept

    def address(self) -> tuple[str, int]:
        match = _LISTEN.match(self.listen)
        assert match is not None
        return match["v6"] or match["host"], int(match["port"])

    def token_values(self) -> list[bytes]:
        return [t.get_secret_value().encode() for t in self.tokens]
