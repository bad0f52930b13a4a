"""Long-lived WebSockets kept authenticated with a Nexus connection's credential: :func:`maintain_websocket`
(the original's nexus-bridge ``MaintainWebSocket``; the Go SDK's sdks/go/bridge_ws.go is the reference
behaviour), on the ``websockets`` library. ``_ws_session`` runs each connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Collection
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from ._held import (
    BridgeMetrics,
    DisconnectReason,
    HeldCredential,
    PermanentConnectionError,
    ReconnectPolicy,
    TokenProvider,
    credential_stop,
    log_adapter,
    permanent_credential_error,
    same_credential,
)
from ._ws_session import (
    CredentialRefreshedError,
    CredentialRefusedError,
    HandshakeError,
    Message,
    MessageTooLargeError,
    NotConnectedError,
    ReauthBuilder,
    SendFunction,
    Session,
    SessionOptions,
    call_handler,
)
from .models import Credential
from .strategies import compute

__all__ = [
    "BridgeMetrics",
    "CredentialRefreshedError",
    "CredentialRefusedError",
    "DEFAULT_PERMANENT_CLOSE_CODES",
    "HandshakeError",
    "MessageTooLargeError",
    "NotConnectedError",
    "PermanentConnectionError",
    "ReconnectPolicy",
    "SendFunction",
    "TokenProvider",
    "maintain_websocket",
]

#: Close codes that end the loop by default: protocol error, unsupported data, invalid payload, policy
#: violation, missing extension, and the "Forbidden" codes 3003 and 4403.
DEFAULT_PERMANENT_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1010, 3003, 4403})

_TRANSPORT = "websocket"
_DEFAULT_LOGGER = logging.getLogger("nexus_sdk.websocket")


class _NoRedirects(connect):
    """``connect`` that follows no redirect: the handshake carries the credential, and websockets
    would send the same headers to whatever origin a ``Location`` names."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


async def maintain_websocket(
    client: TokenProvider,
    connection_id: str,
    url: str,
    *,
    on_connect: Callable[[SendFunction], object] | None = None,
    on_message: Callable[[Message], object] | None = None,
    on_disconnect: Callable[[BaseException], object] | None = None,
    retry: ReconnectPolicy | None = None,
    refresh_buffer: float = 300.0,
    max_message_size: int = 1 << 20,
    ping_interval: float | None = 30.0,
    write_timeout: float = 10.0,
    open_timeout: float = 45.0,
    reauth_message: ReauthBuilder | None = None,
    reconnect_on_refresh: bool = True,
    permanent_close_codes: Collection[int] = DEFAULT_PERMANENT_CLOSE_CODES,
    metrics: BridgeMetrics | None = None,
    logger: logging.Logger | None = None,
    ssl_context: ssl.SSLContext | None = None,
    clock: Callable[[], float] | None = None,
) -> NoReturn:
    """Keeps a WebSocket to ``url`` (``ws://`` or ``wss://``) open with the credential of a Nexus
    connection, until the task is cancelled (the open connection is closed with 1000 and
    ``CancelledError`` propagates) or a permanent failure (:class:`PermanentConnectionError`). It never
    returns. ``client`` is an :class:`AsyncNexusClient` (anything with ``get_token`` and
    ``refresh_connection`` coroutines).

    Handlers may be plain functions or coroutine functions. Per connection: ``on_connect(send)`` before
    its first message (``send(message)`` writes ``str`` as text and ``bytes`` as binary; raises
    :class:`MessageTooLargeError` above the size limit, nothing written, or :class:`NotConnectedError`
    once the connection ended), ``on_message(message)`` for each message in order, then
    ``on_disconnect(error)`` once.

    * The credential is applied to the handshake: oauth2 (``Authorization: Bearer``), header,
      query_param, basic_auth, and aws_sigv4 (the handshake is a GET signed like any other, as AWS API
      Gateway's WebSocket APIs expect). hmac_payload is refused: it signs a request body and a handshake
      has none, so its signature would be a constant that anyone who saw it could replay.
    * Before the credential expires (``refresh_buffer`` seconds) it is refreshed; the connection then
      re-authenticates in band when ``reauth_message`` is given, else is closed (1000) and opened again
      at once with the new credential (``reconnect_on_refresh``; False keeps it).
    * A handshake answered 401 or 403, or a close code 3000 or 4401: the server refused the credential;
      it is refreshed and the connection opened again (at once the first time, then with backoff).
    * Other failures (the network, 5xx, 408, 429, other close codes, no pong, an incoming message above
      ``max_message_size``) reconnect with exponential backoff and jitter (``retry``); the credential
      is read from the broker again before each reconnect.
    * Permanent: the grant needs the user (attention_required), the connection is revoked or unknown,
      the strategy cannot apply, a handshake answered another status, a ``permanent_close_codes`` code.
    """
    endpoint = urlsplit(url)
    if endpoint.scheme not in ("ws", "wss") or not endpoint.netloc:
        raise PermanentConnectionError(
            connection_id,
            "invalid endpoint",
            code="invalid_endpoint",
            cause=ValueError("the endpoint must be a ws:// or wss:// URL"),
        )
    policy = retry or ReconnectPolicy()
    counters = metrics or BridgeMetrics()
    redacted = urlunsplit((endpoint.scheme, endpoint.hostname or "", endpoint.path, "", ""))
    if endpoint.port is not None:
        redacted = urlunsplit((endpoint.scheme, f"{endpoint.hostname}:{endpoint.port}", endpoint.path, "", ""))
    log = log_adapter(
        logger or _DEFAULT_LOGGER, {"connection_id": connection_id, "transport": _TRANSPORT, "endpoint": redacted}
    )
    held = HeldCredential(client, connection_id, refresh_buffer=refresh_buffer, clock=clock, metrics=counters)
    options = SessionOptions(
        max_message_size=max_message_size,
        ping_interval=ping_interval if ping_interval else None,
        write_timeout=write_timeout,
        reauth=reauth_message,
        reconnect_on_refresh=reconnect_on_refresh,
        permanent_close_codes=frozenset(permanent_close_codes),
    )
    dial: dict[str, Any] = {
        "max_size": max_message_size,
        # websockets' keepalive: a ping every ping_interval, the connection failed (1011) when its pong
        # does not come within ping_timeout.
        "ping_interval": options.ping_interval,
        # A pong must come within the write timeout of its ping (the Go bridge's "interval plus write timeout").
        "ping_timeout": write_timeout,
        "open_timeout": open_timeout,
        "close_timeout": min(write_timeout, 2.0),
        "compression": None,
    }
    if ssl_context is not None and endpoint.scheme == "wss":
        dial["ssl"] = ssl_context

    attempt = 0
    refused_before = False  # the previous attempt's credential was refused too
    reread = False  # read the credential from the broker again before the next dial
    while True:
        start = time.monotonic()
        connected = False
        used: tuple[Credential, int] | None = None
        error: BaseException
        try:
            used = await (held.reread() if reread else held.current())
            connected, error = await _connect_once(
                url, used[0], held, options, dial, connection_id, on_connect, on_message, on_disconnect, counters, log
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = credential_stop(connection_id, exc) if used is None and permanent_credential_error(exc) else exc

        now = False
        if isinstance(error, PermanentConnectionError):
            log.error("stopped: this connection cannot be maintained: %s", error)
            raise error
        if isinstance(error, CredentialRefreshedError):
            now, refused_before, reread = True, False, False
        elif isinstance(error, CredentialRefusedError) and used is not None:
            fresh: Credential | None = None
            try:
                fresh, _ = await held.refused(used[1])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if permanent_credential_error(exc):
                    stop = credential_stop(connection_id, exc)
                    log.error("stopped: the server refused the credential and the broker has no other: %s", stop)
                    raise stop from exc
            # A refreshed credential is tried at once, unless the one before was refused just as
            # quickly: then with backoff (the broker does not refresh again right away).
            quick = not connected or time.monotonic() - start < policy.min_backoff
            now = fresh is not None and not same_credential(fresh, used[0]) and not (refused_before and quick)
            refused_before, reread = True, False
        else:
            reread = True
            if connected:
                refused_before = False
        if connected and time.monotonic() - start >= policy.reset_after:
            attempt = 0
        if now:
            log.info("reconnecting with a refreshed credential (%s)", error)
            continue
        wait = policy.delay(attempt)
        attempt += 1
        log.warning("reconnecting after %.3f s (attempt %d): %s", wait, attempt, error)
        await asyncio.sleep(wait)


async def _connect_once(
    url: str,
    credential: Credential,
    held: HeldCredential,
    options: SessionOptions,
    dial: dict[str, Any],
    connection_id: str,
    on_connect: Callable[[SendFunction], object] | None,
    on_message: Callable[[Message], object] | None,
    on_disconnect: Callable[[BaseException], object] | None,
    metrics: BridgeMetrics,
    log: logging.LoggerAdapter[logging.Logger],
) -> tuple[bool, BaseException]:
    """Dials once with ``credential`` and, once connected, runs the connection until it ends."""
    if credential.strategy.type == "hmac_payload":
        return False, PermanentConnectionError(
            connection_id,
            "strategy not applicable",
            code="strategy_not_applicable",
            cause=ValueError(
                "hmac_payload signs a request body and a WebSocket handshake has none: "
                "its signature would be a replayable constant"
            ),
        )
    try:
        target, headers = _handshake(url, credential)
    except Exception as exc:
        return False, credential_stop(connection_id, exc)
    try:
        ws: ClientConnection = await _NoRedirects(target, additional_headers=headers, **dial)
    except InvalidStatus as exc:
        return False, _handshake_failure(exc.response.status_code, connection_id)
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        return False, exc
    except Exception as exc:  # a malformed handshake answer, a proxy failure: try again later
        return False, exc
    metrics.inc_connections(_TRANSPORT)
    metrics.set_connection_status(_TRANSPORT, connection_id, True)
    log.info("connected")
    session = Session(ws, connection_id, held, credential, options, on_connect, on_message, log)
    reason: DisconnectReason = "closed"
    error: BaseException = asyncio.CancelledError()
    try:
        reason, error = await session.run()
    finally:
        await ws.close()
        metrics.set_connection_status(_TRANSPORT, connection_id, False)
        metrics.inc_disconnects(_TRANSPORT, session.ending[0] if session.ending else reason)
        if session.ending is not None:
            error = session.ending[1]
        log.info("disconnected (%s): %s", reason, error)
        await call_handler(on_disconnect, error)
    return True, error


def _handshake(url: str, credential: Credential) -> tuple[str, dict[str, str]]:
    """The URL to dial and the headers of the handshake, the strategy applied (it is an HTTP GET)."""
    parts = urlsplit(url)
    http = urlunsplit(("https" if parts.scheme == "wss" else "http", *parts[1:]))
    applied = compute(credential, "GET", http, {}, None)
    final = urlsplit(applied.url or http)
    query = final.query
    if applied.query:
        pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in applied.query]
        query = urlencode([*pairs, *applied.query.items()])
    return urlunsplit((parts.scheme, final.netloc, final.path, query, final.fragment)), dict(applied.headers)


def _handshake_failure(status: int, connection_id: str) -> BaseException:
    if status in (401, 403):
        return CredentialRefusedError(status=status)
    if status in (408, 429) or status >= 500:
        return HandshakeError(status)
    return PermanentConnectionError(
        connection_id, f"handshake answered {status}", code="handshake_refused", cause=HandshakeError(status)
    )
