"""Applying a strategy (the v1 contract's table) to an outgoing request.

``compute`` is transport-neutral: it returns the headers and query parameters to set. The bridge
(:mod:`nexus_sdk.bridge`, :mod:`nexus_sdk.requests_auth`) applies them to httpx or requests objects.

==============  ===============================================================================
type            applies
==============  ===============================================================================
oauth2          ``Authorization: Bearer <access_token>``
header          ``<header_name>: <value_prefix><credentials[credential_field]>``
headers         each ``<name>: <template>`` of the config, every ``{field}`` replaced by ``credentials[field]``
query_param     ``?<param_name>=<credentials[credential_field]>``
basic_auth      HTTP Basic of ``username_field`` / ``password_field``
hmac_payload    ``<header_name>: HMAC-<algo>(credentials[secret_field], raw body)`` in hex or base64
aws_sigv4       AWS Signature V4 by ``botocore.auth.SigV4Auth`` (region, service from config)
==============  ===============================================================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit, urlunsplit

from .errors import StrategyError
from .models import Credential

__all__ = ["AppliedCredential", "compute", "credential_names", "origin_of", "SIGV4_HEADERS"]

#: Headers the SigV4 signer writes; removed before (re)signing so a retry never carries stale ones.
#: ``x-amz-content-sha256`` is not one (``SigV4Auth`` never writes it): a caller's is kept and signed, as S3 needs.
SIGV4_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token")

#: A ``{field}`` placeholder of a ``headers`` template: a credential field's name in braces.
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]{1,64})\}")


@dataclass(frozen=True)
class AppliedCredential:
    """What to change on a request. Values are secrets: hidden from ``repr``."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    remove_headers: tuple[str, ...] = ()
    #: The URL to send instead (SigV4 sends the query in its canonical encoding).
    url: str | None = None


def _field(credential: Credential, name: str) -> str:
    value = credential.credentials.get(name)
    if value is None and name == "access_token" and credential.access_token is not None:
        value = credential.access_token
    if value is None:
        raise StrategyError(
            f"The credential of connection {credential.connection_id} has no field {name!r} "
            f"required by its {credential.strategy.type} strategy."
        )
    return value


def compute(
    credential: Credential, method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> AppliedCredential:
    """The headers and query parameters that apply ``credential`` to this request.

    ``url`` must be the final URL (with its query) and ``body`` the exact bytes that will be sent:
    ``hmac_payload`` and ``aws_sigv4`` sign them.
    """
    strategy = credential.strategy
    c = strategy.config
    kind = strategy.type
    if kind == "oauth2":
        return AppliedCredential(headers={"Authorization": f"Bearer {_field(credential, 'access_token')}"})
    if kind == "header":
        name = c.get("header_name") or "Authorization"
        value = _field(credential, c.get("credential_field") or "api_key")
        return AppliedCredential(headers={name: f"{c.get('value_prefix', '')}{value}"})
    if kind == "headers":
        if not c:
            raise StrategyError("The headers strategy has no header in its config.")
        # Each {field} replaced once by that credential field (a value is never expanded again).

        def fill(match: re.Match[str]) -> str:
            return _field(credential, match.group(1))

        return AppliedCredential(headers={name: PLACEHOLDER.sub(fill, template) for name, template in c.items()})
    if kind == "query_param":
        param = c.get("param_name")
        if not param:
            raise StrategyError("The query_param strategy has no param_name configured.")
        return AppliedCredential(query={param: _field(credential, c.get("credential_field") or "api_key")})
    if kind == "basic_auth":
        user = _field(credential, c.get("username_field") or "username")
        password = _field(credential, c.get("password_field") or "password")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return AppliedCredential(headers={"Authorization": f"Basic {token}"})
    if kind == "hmac_payload":
        mac_header = c.get("header_name")
        if not mac_header:
            raise StrategyError("The hmac_payload strategy has no header_name configured.")
        algo = (c.get("algo") or "sha256").lower()
        if algo not in ("sha256", "sha1"):
            raise StrategyError(f"The hmac_payload strategy names an unsupported algo {algo!r}.")
        key = _field(credential, c.get("secret_field") or "api_secret").encode()
        mac = hmac.new(key, body or b"", getattr(hashlib, algo))
        encoding = (c.get("encoding") or "hex").lower()
        if encoding not in ("hex", "base64"):
            raise StrategyError(f"The hmac_payload strategy names an unsupported encoding {encoding!r}.")
        value = base64.b64encode(mac.digest()).decode("ascii") if encoding == "base64" else mac.hexdigest()
        return AppliedCredential(headers={mac_header: value})
    if kind == "aws_sigv4":
        return _sigv4(credential, method, url, headers, body)
    raise StrategyError(f"Unknown strategy type {kind!r}; upgrade nexus-broker-sdk.")


def _sigv4(
    credential: Credential, method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> AppliedCredential:
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StrategyError("The aws_sigv4 strategy needs botocore: pip install 'nexus-broker-sdk[aws]'.") from exc

    class _S3PathSigV4Auth(SigV4Auth):  # type: ignore[misc]
        """S3 signs the path as sent (escaped once); other services escape it again (AWS SigV4 docs)."""

        def _normalize_url_path(self, path: str) -> str:
            return path

    c = credential.strategy.config
    service = c.get("service")
    if not service:
        raise StrategyError("The aws_sigv4 strategy has no service configured.")
    region = c.get("region") or "us-east-1"
    access_key = _field(credential, "access_key")
    secret_key = _field(credential, "secret_key")
    session_token = credential.credentials.get("session_token") or None

    url = canonical_query_url(url)
    # Sign only headers that reach the server unchanged: host, content-type and x-amz-* ones.
    to_sign: dict[str, Any] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in SIGV4_HEADERS:
            continue
        if lower in ("host", "content-type") or lower.startswith("x-amz-"):
            to_sign[name] = value
    request = AWSRequest(method=method.upper(), url=url, headers=to_sign, data=body or b"")
    signer = _S3PathSigV4Auth if service == "s3" else SigV4Auth
    signer(Credentials(access_key, secret_key, session_token), service, region).add_auth(request)
    out = {name: str(request.headers[name]) for name in ("Authorization", "X-Amz-Date")}
    if session_token:
        out["X-Amz-Security-Token"] = str(request.headers["X-Amz-Security-Token"])
    return AppliedCredential(headers=out, remove_headers=SIGV4_HEADERS, url=url)


def canonical_query_url(url: str) -> str:
    """The URL with its query in SigV4's encoding (RFC 3986 unreserved kept, space as %20).

    Form-style encoders write a space as ``+``; a server decodes it back to a space and then
    canonicalises it as ``%20``. Sending the canonical form removes that ambiguity.
    """
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int]:
    """A URL's origin (scheme, host, port), lower-cased, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def credential_names(applied: AppliedCredential) -> frozenset[str]:
    """The lower-cased names of every header a strategy sets or replaces on a request."""
    return frozenset(name.lower() for name in (*applied.headers, *applied.remove_headers))


def without_query_params(url: str, params: frozenset[str]) -> str:
    """``url`` without the query parameters named in ``params``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [p for p in parts.query.split("&") if p and unquote_plus(p.split("=", 1)[0]) not in params]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), parts.fragment))
