"""Python SDK of the Nexus credential broker.

* :class:`NexusClient` / :class:`AsyncNexusClient`: the agent-facing API (connections, tokens,
  agent sessions, user secrets) with API-key or client-credentials authentication.
* :class:`NexusAdminClient` / :class:`AsyncNexusAdminClient`: providers, connections, agents, audit.
* :class:`NexusAuth` (httpx) and :class:`NexusRequestsAuth` (requests): the bridge that applies a
  connection's credential to upstream requests for every strategy type.
* :func:`maintain_websocket`: a long-lived WebSocket kept authenticated with a connection's credential.
"""

from ._config import RetryPolicy
from .admin import NexusAdminClient
from .async_admin import AsyncNexusAdminClient
from .async_client import AsyncNexusClient
from .bridge import NexusAuth, apply_to_httpx_request
from .client import NexusClient
from .errors import (
    AttentionRequiredError,
    AuthenticationError,
    BadRequestError,
    BrokerUnavailableError,
    ConfigurationError,
    ConflictError,
    ConnectionNotActiveError,
    NexusError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    StrategyError,
    UnresolvedSecretsError,
    WaitTimeoutError,
)
from .models import (
    Agent,
    AgentSession,
    AgentToken,
    AgentWithSecret,
    AuditEvent,
    AuditPage,
    ConfirmedConnection,
    ConnectionRequest,
    ConnectionStatus,
    ConnectSession,
    Credential,
    Provider,
    ProviderSummary,
    RevokeResult,
    SecretResolution,
    Strategy,
    UserSecret,
)
from .requests_auth import NexusRequestsAuth, apply_to_prepared_request
from .secrets import find_references, replace_references
from .websocket import (
    DEFAULT_PERMANENT_CLOSE_CODES,
    BridgeMetrics,
    CredentialRefreshedError,
    CredentialRefusedError,
    HandshakeError,
    MessageTooLargeError,
    NotConnectedError,
    PermanentConnectionError,
    ReconnectPolicy,
    maintain_websocket,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "NexusClient",
    "AsyncNexusClient",
    "NexusAdminClient",
    "AsyncNexusAdminClient",
    "NexusAuth",
    "NexusRequestsAuth",
    "apply_to_httpx_request",
    "apply_to_prepared_request",
    "RetryPolicy",
    "find_references",
    "replace_references",
    # long-lived connections
    "maintain_websocket",
    "ReconnectPolicy",
    "BridgeMetrics",
    "DEFAULT_PERMANENT_CLOSE_CODES",
    "PermanentConnectionError",
    "CredentialRefusedError",
    "CredentialRefreshedError",
    "HandshakeError",
    "MessageTooLargeError",
    "NotConnectedError",
    # errors
    "NexusError",
    "ConfigurationError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "AttentionRequiredError",
    "ConnectionNotActiveError",
    "UnresolvedSecretsError",
    "RateLimitedError",
    "ServerError",
    "BrokerUnavailableError",
    "StrategyError",
    "WaitTimeoutError",
    # models
    "Agent",
    "AgentSession",
    "AgentToken",
    "AgentWithSecret",
    "AuditEvent",
    "AuditPage",
    "ConfirmedConnection",
    "ConnectionRequest",
    "ConnectionStatus",
    "ConnectSession",
    "Credential",
    "Provider",
    "ProviderSummary",
    "RevokeResult",
    "SecretResolution",
    "Strategy",
    "UserSecret",
]
