"""The bridge for ``requests``: :class:`NexusRequestsAuth`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from ._cache import Clock, SyncCredentialSource, _Target
from .errors import StrategyError
from .models import Credential
from .strategies import AppliedCredential, compute, credential_names, origin_of, without_query_params

if TYPE_CHECKING:
    import requests

    from .client import NexusClient

__all__ = ["NexusRequestsAuth", "apply_to_prepared_request"]

_RETRIED = "_nexus_retried"
_CREDENTIAL = "_nexus_credential"


def _body_bytes(prepared: requests.PreparedRequest) -> bytes:
    body = prepared.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise StrategyError("The request body is a stream; the bridge needs the body in memory (bytes or str) to sign it.")


def _set_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in params]
    # Percent-encode like a form would, so the upstream decodes exactly the credential value.
    kept += [f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), parts.fragment))


def apply_to_prepared_request(prepared: requests.PreparedRequest, credential: Credential) -> None:
    """Applies ``credential`` to a prepared ``requests`` request in place."""
    _apply(prepared, credential)


def _apply(prepared: requests.PreparedRequest, credential: Credential) -> AppliedCredential:
    body = _body_bytes(prepared) if credential.strategy.type in ("hmac_payload", "aws_sigv4") else None
    url = prepared.url or ""
    applied = compute(credential, prepared.method or "GET", url, dict(prepared.headers), body)
    for name in applied.remove_headers:
        prepared.headers.pop(name, None)
    for name, value in applied.headers.items():
        prepared.headers[name] = value
    if applied.url is not None:
        prepared.url = applied.url
    if applied.query:
        prepared.url = _set_query(url, dict(applied.query))
    return applied


def _replayable(prepared: requests.PreparedRequest) -> bool:
    """Whether the body can be sent again: in memory, or a stream requests can rewind (a seekable file)."""
    body = prepared.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    position = getattr(prepared, "_body_position", None)
    return isinstance(position, int) and callable(getattr(body, "seek", None))


def _strip_credential(prepared: requests.PreparedRequest, headers: frozenset[str], params: frozenset[str]) -> None:
    for name in [n for n in prepared.headers if n.lower() in headers]:
        del prepared.headers[name]
    if params and prepared.url:
        prepared.url = without_query_params(prepared.url, params)


def _redirect_guard(
    origin: tuple[str, str, int],
    headers: frozenset[str],
    params: frozenset[str],
    response: requests.Response,
    **kwargs: Any,
) -> requests.Response:
    """Before requests follows a redirect to another origin, removes the credential from the request
    it copies for the next hop (requests itself only drops ``Authorization``) and the query credential
    from the ``Location`` it follows."""
    if response.is_redirect:
        location = response.headers.get("location", "")
        target = urljoin(response.url or "", location)
        if origin_of(target) != origin:
            _strip_credential(response.request, headers, params)
            if params:
                # A server that keeps the query in its Location would hand the credential on.
                response.headers["location"] = without_query_params(location, params)
    return response


class NexusRequestsAuth:
    """A ``requests`` auth (``session.auth = ...`` or ``requests.get(url, auth=...)``) applying a Nexus
    connection's credential, with the same caching, single-flight refresh and retry-once-on-401 as
    :class:`~nexus_sdk.NexusAuth`. Thread-safe: share one instance between threads.

    * The credential goes only to the origin (scheme, host, port) of the request: when requests follows
      a redirect to another origin, every header the strategy set and its query parameter are removed.
    * After a 401 the request is sent again only if its body can be replayed (bytes, str, or a seekable
      file, rewound); a body from a generator or another one-shot stream is not buffered: the 401 is
      returned as is (the credential is still refreshed for the next request).
    """

    def __init__(
        self,
        client: NexusClient,
        connection_id: str | None = None,
        *,
        workspace_id: str | None = None,
        provider_name: str | None = None,
        refresh_skew: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        from .client import NexusClient

        if not isinstance(client, NexusClient):
            raise TypeError("NexusRequestsAuth needs a (synchronous) NexusClient")
        self._target = _Target(connection_id, workspace_id, provider_name, refresh_skew, clock)
        self._source = SyncCredentialSource(client, self._target)

    def __repr__(self) -> str:
        return f"NexusRequestsAuth({self._target.describe()})"

    @property
    def credential(self) -> Credential | None:
        entry = self._target.entry
        return None if entry is None else entry.credential

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        used = self._source.current()
        applied = _apply(prepared, used)
        setattr(prepared, _CREDENTIAL, used)  # noqa: B010 - requests objects carry no typed slot for it
        guard = partial(
            _redirect_guard, origin_of(prepared.url or ""), credential_names(applied), frozenset(applied.query)
        )
        prepared.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        prepared.register_hook("response", guard)  # type: ignore[no-untyped-call]
        return prepared

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, _RETRIED, False):
            return response
        used = getattr(request, _CREDENTIAL, None)
        if not isinstance(used, Credential):
            return response
        fresh = self._source.after_unauthorized(used)
        if not _replayable(request):
            # A one-shot stream was consumed by the first send: it cannot be sent again.
            return response
        # Release the refused answer's connection, then send once more with the fresh credential.
        _ = response.content
        response.close()
        retry = request.copy()
        retry.hooks = {"response": []}
        # A retried request must carry the original body and URL, not the first credential's query.
        retry.url = request.url
        applied = _apply(retry, fresh)
        if retry.body is not None and not isinstance(retry.body, (bytes, str)):
            from requests.utils import rewind_body

            rewind_body(retry)
        setattr(retry, _RETRIED, True)
        setattr(retry, _CREDENTIAL, fresh)  # noqa: B010
        connection = response.connection
        second: requests.Response = connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        if second.is_redirect:
            # requests follows the retry's redirect by copying the original request: give it the fresh
            # credential, or none when the redirect leaves the origin.
            _redirect_guard(origin_of(retry.url or ""), credential_names(applied), frozenset(applied.query), second)
            request.headers = retry.headers.copy()
            request.url = retry.url
        return second
