"""The bridge for httpx: :class:`NexusAuth` applies a connection's credential to every request."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

import httpx

from ._cache import AsyncCredentialSource, Clock, SyncCredentialSource, _Target
from .models import Credential
from .strategies import AppliedCredential, compute, credential_names, origin_of, without_query_params

if TYPE_CHECKING:
    from .async_client import AsyncNexusClient
    from .client import NexusClient

__all__ = ["NexusAuth", "apply_to_httpx_request"]


def apply_to_httpx_request(request: httpx.Request, credential: Credential) -> None:
    """Applies ``credential`` to an httpx request in place (its body must already be read)."""
    _apply(request, credential)


def _apply(request: httpx.Request, credential: Credential) -> AppliedCredential:
    applied = compute(credential, request.method, str(request.url), dict(request.headers), request.content)
    for name in applied.remove_headers:
        if name in request.headers:
            del request.headers[name]
    for name, value in applied.headers.items():
        request.headers[name] = value
    if applied.url is not None and applied.url != str(request.url):
        request.url = httpx.URL(applied.url)
    if applied.query:
        url = request.url
        for name, value in applied.query.items():
            url = url.copy_set_param(name, value)
        request.url = url
    return applied


class _OriginGuard:
    """Keeps the credential on the origin of the request it was applied to.

    httpx follows redirects without calling the auth flow again, copying every header but
    ``Authorization`` to the next hop, even on another origin. The guard is installed as the request's
    ``trace`` extension (httpx hands the extensions to every redirect hop, and its default transport
    calls the trace before it writes the request headers): when a hop goes to another origin, it removes
    the headers the strategy set and its query parameter from what is written. A ``trace`` set by the
    caller is still called.
    """

    def __init__(self, request: httpx.Request, applied: AppliedCredential) -> None:
        inner = request.extensions.get("trace")
        while isinstance(inner, _OriginGuard):
            inner = inner.inner
        self.inner: Any = inner
        self.origin = origin_of(str(request.url))
        self.headers = credential_names(applied)
        self.params = frozenset(applied.query)

    def guard(self, name: str, info: dict[str, Any]) -> None:
        if not name.endswith("send_request_headers.started"):
            return
        outgoing: Any = info.get("request")
        url = getattr(outgoing, "url", None)
        if url is None:
            return
        target = bytes(url.target).decode("latin-1")
        if target.startswith(("http://", "https://")):
            origin = origin_of(target)  # absolute form, through a forward proxy
        else:
            scheme = bytes(url.scheme).decode("ascii").lower()
            host = bytes(url.host).decode("ascii").lower()
            port = url.port if url.port is not None else {"http": 80, "https": 443}.get(scheme, 0)
            origin = (scheme, host, port)
        if origin == self.origin:
            return
        outgoing.headers[:] = [
            (k, v) for k, v in outgoing.headers if bytes(k).decode("latin-1").lower() not in self.headers
        ]
        if self.params:
            url.target = without_query_params(target, self.params).encode("latin-1")


class _SyncOriginGuard(_OriginGuard):
    def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.guard(name, info)
        if self.inner is not None:
            self.inner(name, info)


class _AsyncOriginGuard(_OriginGuard):
    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.guard(name, info)
        if self.inner is not None:
            await self.inner(name, info)


class NexusAuth(httpx.Auth):
    """An ``httpx.Auth`` that applies a Nexus connection's credential, for every strategy type.

    Give a ``connection_id``, or ``workspace_id`` and ``provider_name`` (the newest active connection).
    Pass a :class:`NexusClient` for ``httpx.Client`` or an :class:`AsyncNexusClient` for
    ``httpx.AsyncClient``.

    * The credential is cached until ``expires_at - refresh_skew`` (or half its remaining lifetime,
      if shorter); then it is refreshed with the broker (``POST /v1/refresh/{id}``) once, however
      many requests are waiting (a lock: threading for sync, asyncio for async).
    * After a 401 from the upstream API the credential is refreshed (forced) and the request is sent
      again, exactly once.
    * ``AttentionRequiredError`` is raised when the user must reconnect; broker outages are retried
      with exponential backoff and jitter by the client (bounded by its ``max_retries``).
    * The credential goes only to the origin (scheme, host, port) of the request: with
      ``follow_redirects=True`` a redirect to another origin goes out without the headers the strategy
      set and without its query parameter (through httpx's default transport; see :class:`_OriginGuard`).
    * ``clock`` (epoch seconds) is injectable for tests.
    """

    requires_request_body = True

    def __init__(
        self,
        client: NexusClient | AsyncNexusClient,
        connection_id: str | None = None,
        *,
        workspace_id: str | None = None,
        provider_name: str | None = None,
        refresh_skew: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        from .async_client import AsyncNexusClient
        from .client import NexusClient

        target = _Target(connection_id, workspace_id, provider_name, refresh_skew, clock)
        self._sync: SyncCredentialSource | None = None
        self._async: AsyncCredentialSource | None = None
        if isinstance(client, NexusClient):
            self._sync = SyncCredentialSource(client, target)
        elif isinstance(client, AsyncNexusClient):
            self._async = AsyncCredentialSource(client, target)
        else:
            raise TypeError("NexusAuth needs a NexusClient or an AsyncNexusClient")
        self._target = target

    def __repr__(self) -> str:
        return f"NexusAuth({self._target.describe()})"

    @property
    def credential(self) -> Credential | None:
        """The cached credential, if any (its secrets are hidden from ``repr``)."""
        entry = self._target.entry
        return None if entry is None else entry.credential

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._sync is None:
            raise TypeError(
                "This NexusAuth was built with an AsyncNexusClient: use it with httpx.AsyncClient, "
                "or build one with a NexusClient for httpx.Client."
            )
        request.read()
        used = self._sync.current()
        request.extensions["trace"] = _SyncOriginGuard(request, _apply(request, used))
        response = yield request
        if response.status_code == 401:
            fresh = self._sync.after_unauthorized(used)
            request.extensions["trace"] = _SyncOriginGuard(request, _apply(request, fresh))
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._async is None:
            raise TypeError(
                "This NexusAuth was built with a NexusClient: use it with httpx.Client, "
                "or build one with an AsyncNexusClient for httpx.AsyncClient."
            )
        await request.aread()
        used = await self._async.current()
        request.extensions["trace"] = _AsyncOriginGuard(request, _apply(request, used))
        response = yield request
        if response.status_code == 401:
            fresh = await self._async.after_unauthorized(used)
            request.extensions["trace"] = _AsyncOriginGuard(request, _apply(request, fresh))
            yield request
