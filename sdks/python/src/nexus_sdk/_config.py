"""Configuration: argument, then environment, then default. Read once, at construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigurationError

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 0.25
DEFAULT_BACKOFF_MAX = 8.0
DEFAULT_MAX_RETRY_AFTER = 60.0

ENV_URL = "NEXUS_URL"
ENV_API_KEY = "NEXUS_API_KEY"
ENV_CLIENT_ID = "NEXUS_CLIENT_ID"
ENV_CLIENT_SECRET = "NEXUS_CLIENT_SECRET"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of connection errors, 429 (honouring ``Retry-After``) and 502/503/504.

    The n-th retry waits ``min(backoff_max, backoff_base * 2**n)`` with "equal jitter" (half fixed,
    half random); a ``Retry-After`` above ``max_retry_after`` is not waited for (the error is raised).
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError("max_retries must be 0 or more")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ConfigurationError("backoff_base and backoff_max must be 0 or more")


@dataclass(frozen=True)
class ResolvedConfig:
    base_url: str
    api_key: str | None = field(repr=False)
    client_id: str | None
    client_secret: str | None = field(repr=False)

    @property
    def uses_client_credentials(self) -> bool:
        return self.client_id is not None and self.client_secret is not None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def resolve_config(
    *,
    base_url: str | None,
    api_key: str | None,
    client_id: str | None,
    client_secret: str | None,
    env: Mapping[str, str] | None,
    allow_client_credentials: bool,
    who: str,
) -> ResolvedConfig:
    """Argument, then environment, then default; a missing credential raises ConfigurationError.

    Credentials are taken as a whole from one level: if any credential argument is given, the
    environment's credentials are ignored. At one level, agent client credentials win over an API
    key (for clients that accept both).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    url = _clean(base_url) or _clean(environ.get(ENV_URL)) or DEFAULT_URL
    if not (url.startswith("http://") or url.startswith("https://")):
        raise ConfigurationError(f"{who}: the broker URL must start with http:// or https:// (got {url!r})")
    url = url.rstrip("/")

    arg_key, arg_id, arg_secret = _clean(api_key), _clean(client_id), _clean(client_secret)
    if arg_key is None and arg_id is None and arg_secret is None:
        arg_key = _clean(environ.get(ENV_API_KEY))
        if allow_client_credentials:
            arg_id = _clean(environ.get(ENV_CLIENT_ID))
            arg_secret = _clean(environ.get(ENV_CLIENT_SECRET))
        source = "environment"
    else:
        source = "arguments"

    if allow_client_credentials and (arg_id is None) != (arg_secret is None):
        missing = "client_secret" if arg_secret is None else "client_id"
        raise ConfigurationError(
            f"{who}: agent client credentials from the {source} are incomplete ({missing} is missing). "
            f"Pass client_id= and client_secret=, or set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}."
        )
    if allow_client_credentials and arg_id is not None and arg_secret is not None:
        return ResolvedConfig(base_url=url, api_key=None, client_id=arg_id, client_secret=arg_secret)
    if arg_key is not None:
        return ResolvedConfig(base_url=url, api_key=arg_key, client_id=None, client_secret=None)
    if allow_client_credentials:
        raise ConfigurationError(
            f"{who}: no credential. Pass api_key= (or client_id= and client_secret=) to the constructor, "
            f"or set {ENV_API_KEY} (or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}) in the environment."
        )
    raise ConfigurationError(
        f"{who}: no admin API key. Pass api_key= to the constructor, or set {ENV_API_KEY} in the environment."
    )
