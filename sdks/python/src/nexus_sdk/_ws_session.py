"""One WebSocket connection of :func:`nexus_sdk.websocket.maintain_websocket`, on ``websockets``: its
reader, its credential refreshes (in band or by reconnecting), and what ends it
(sdks/go/bridge_ws_session.go)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from ._held import DisconnectReason, HeldCredential, PermanentConnectionError, credential_stop
from .errors import NexusError
from .models import Credential

#: Sends one message: ``str`` as a text frame, ``bytes`` as a binary frame.
SendFunction = Callable[[str | bytes], Awaitable[None]]
Message = str | bytes
ReauthBuilder = Callable[[Credential], "Message | Awaitable[Message]"]

#: Close codes a server sends when it refuses the credential of an open connection: refreshed, then
#: connect again (3000 is "Unauthorized" in the IANA registry of WebSocket close codes; 4401 is
#: graphql-ws's "Unauthorized").
UNAUTHORIZED_CLOSE_CODES = frozenset({3000, 4401})


class MessageTooLargeError(NexusError):
    """A message above the size limit: an outgoing one is refused by ``send`` (nothing written, the
    connection stays); an incoming one ends the connection (close 1009), which is then opened again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="message_too_large")


class NotConnectedError(NexusError):
    """``send`` was called after its connection ended."""

    def __init__(self) -> None:
        super().__init__("The WebSocket connection has ended.", code="not_connected")


class CredentialRefusedError(NexusError):
    """The server refused the credential: a handshake answered 401 or 403, or close code 3000 or
    4401. The credential is refreshed before the next attempt."""

    def __init__(self, *, status: int = 0, close_code: int = 0) -> None:
        text = (
            f"The server refused the credential (handshake answered {status})."
            if status
            else f"The server refused the credential (close code {close_code})."
        )
        super().__init__(text, status=status or None, code="credential_refused")
        self.close_code = close_code


class CredentialRefreshedError(NexusError):
    """The connection was closed (1000) to be opened again at once with a refreshed credential."""

    def __init__(self) -> None:
        super().__init__("Reconnecting with a refreshed credential.", code="credential_refreshed")


class HandshakeError(NexusError):
    """A handshake answered another status than 101, 401 and 403."""

    def __init__(self, status: int) -> None:
        super().__init__(f"The WebSocket handshake was answered {status}.", status=status, code="handshake_refused")


@dataclass(frozen=True)
class SessionOptions:
    max_message_size: int
    ping_interval: float | None
    write_timeout: float
    reauth: ReauthBuilder | None
    reconnect_on_refresh: bool
    permanent_close_codes: Collection[int]


async def call_handler(callback: Callable[..., object] | None, *args: object) -> None:
    """Calls a handler that may be a plain function or a coroutine function."""
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


@dataclass
class Session:
    """Runs one established connection until it ends; ``run`` returns the disconnect reason (for
    metrics) and the error for ``on_disconnect`` and the reconnect loop."""

    ws: ClientConnection
    connection_id: str
    held: HeldCredential
    credential: Credential
    options: SessionOptions
    on_connect: Callable[[SendFunction], object] | None
    on_message: Callable[[Message], object] | None
    log: logging.LoggerAdapter[logging.Logger]
    #: Set when this side decided to end the connection (it then closes with 1000).
    ending: tuple[DisconnectReason, BaseException] | None = None

    async def send(self, message: Message) -> None:
        """Sends one message once the size limit allows it; bounded by the write timeout."""
        if self.ending is not None or self.ws.close_code is not None:
            raise NotConnectedError()
        size = len(message.encode()) if isinstance(message, str) else len(message)
        if size > self.options.max_message_size:
            raise MessageTooLargeError(f"{size} bytes, the limit is {self.options.max_message_size}.")
        try:
            await asyncio.wait_for(self.ws.send(message), self.options.write_timeout)
        except ConnectionClosed as exc:
            raise NotConnectedError() from exc

    async def end_with(self, reason: DisconnectReason, error: BaseException, text: str) -> None:
        """This side ends the connection: a close handshake (RFC 6455 §7.1.2), bounded by close_timeout."""
        if self.ending is None:
            self.ending = (reason, error)
            await self.ws.close(CloseCode.NORMAL_CLOSURE, text)

    async def run(self) -> tuple[DisconnectReason, BaseException]:
        await call_handler(self.on_connect, self.send)
        refresher = asyncio.get_running_loop().create_task(self._refresh())
        try:
            closed = await self._read()
        except asyncio.CancelledError as cancelled:
            # The caller stopped the loop: close cleanly (1000), then let the cancellation go on.
            self.ending = self.ending or ("closed", cancelled)
            await self.ws.close(CloseCode.NORMAL_CLOSURE, "client closing")
            raise
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        return self.ending or self._classify(closed)

    async def _read(self) -> ConnectionClosed:
        while True:
            try:
                message = await self.ws.recv()
            except ConnectionClosed as exc:
                return exc
            await call_handler(self.on_message, message)

    async def _refresh(self) -> None:
        permanent = await self.held.refresh_loop(self.credential, self._on_fresh, self.log)
        await self.end_with("permanent", credential_stop(self.connection_id, permanent), "credential no longer valid")

    async def _on_fresh(self, credential: Credential) -> None:
        """A credential different from the connection's: re-authenticate in band, or reconnect."""
        build = self.options.reauth
        if build is not None:
            try:
                message = build(credential)
                if inspect.isawaitable(message):
                    message = await message
                await self.send(message)
                self.log.info("re-authenticated in band")
                return
            except Exception as exc:
                self.log.warning("in-band re-authentication failed; reconnecting: %s", exc)
        elif not self.options.reconnect_on_refresh:
            return
        await self.end_with("refresh", CredentialRefreshedError(), "credential refreshed")

    def _classify(self, closed: ConnectionClosed) -> tuple[DisconnectReason, BaseException]:
        """What a close the peer started (or a connection that failed) means for the loop."""
        sent, rcvd = closed.sent, closed.rcvd
        if rcvd is None and sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            too_large = MessageTooLargeError(f"An incoming message exceeded {self.options.max_message_size} bytes.")
            too_large.__cause__ = closed
            return "too_large", too_large
        if rcvd is None and sent is not None and sent.code == CloseCode.INTERNAL_ERROR:
            # websockets fails the connection with 1011 when a keepalive ping got no pong in time.
            lost = NexusError(f"No pong within {self.options.write_timeout} s of a ping.", code="no_pong")
            lost.__cause__ = closed
            return "dropped", lost
        code = rcvd.code if rcvd is not None else 0
        if code in self.options.permanent_close_codes:
            return "permanent", PermanentConnectionError(
                self.connection_id, f"close code {code}", code="close_code", cause=closed, close_code=code
            )
        if code in UNAUTHORIZED_CLOSE_CODES:
            refused = CredentialRefusedError(close_code=code)
            refused.__cause__ = closed
            return "unauthorized", refused
        return "dropped", closed
