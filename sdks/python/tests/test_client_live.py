"""The agent and admin clients (sync and async) against the live broker of the testbed."""

from __future__ import annotations

import urllib.request
import uuid
from datetime import datetime, timezone

import pytest

from nexus_sdk import (
    AsyncNexusAdminClient,
    AsyncNexusClient,
    AuthenticationError,
    BadRequestError,
    NexusAdminClient,
    NexusClient,
    NotFoundError,
    UnresolvedSecretsError,
)
from nexus_sdk.models import AgentToken

from conftest import Testbed

RETURN_URL = "http://localhost:3000/connected"


def nested_config() -> dict[str, object]:
    return {
        "db": {"host": "db.internal", "password": "nexus-secret:db-password", "port": 5432},
        "replicas": [{"password": "nexus-secret:db-password"}, "plain", ["nexus-secret:db-password"]],
        "note": "mentions nexus-secret:db-password but is not a reference",
        "flags": (True, None),
    }


def assert_resolved(resolved: object, value: str) -> None:
    assert resolved == {
        "db": {"host": "db.internal", "password": value, "port": 5432},
        "replicas": [{"password": value}, "plain", [value]],
        "note": "mentions nexus-secret:db-password but is not a reference",
        "flags": [True, None] if isinstance(resolved, dict) and isinstance(resolved["flags"], list) else (True, None),
    }


def test_request_connection_sends_connection_config(testbed: Testbed, agent: NexusClient) -> None:
    # Issue #20: the testbed's providers declare no per-connection parameters, so the broker refuses
    # the name it was sent (and creates nothing): the field reached it.
    with pytest.raises(BadRequestError) as refused:
        agent.request_connection(
            f"ws-{uuid.uuid4().hex[:10]}",
            provider_name=testbed.provider("oauth2"),
            return_url=RETURN_URL,
            connection_config={"tenant": "acme"},
        )
    assert refused.value.status == 400
    assert refused.value.code == "invalid_connection_config"
    assert "tenant is not a connection parameter" in refused.value.message


def test_create_connect_session_offers_the_providers_asked_for(testbed: Testbed, agent: NexusClient) -> None:
    wanted = sorted([testbed.provider("oauth2"), testbed.provider("header")])
    session = agent.create_connect_session(f"ws-{uuid.uuid4().hex[:10]}", providers=wanted, return_url=RETURN_URL)
    assert sorted(name for _, name in session.providers) == wanted
    assert session.token in session.url
    assert session.token not in repr(session), "the capability stays out of repr"
    assert session.expires_at is not None and session.expires_at > datetime.now(timezone.utc)
    with urllib.request.urlopen(session.url) as page:  # noqa: S310 (the testbed broker, on loopback)
        assert page.status == 200
        html = page.read().decode()
    for name in wanted:
        assert name in html


def test_verify_and_confirm_reach_the_broker(testbed: Testbed, agent: NexusClient) -> None:
    # The testbed's broker has no verifier page (NEXUS_CONNECT_VERIFIER_URL): asking for one is refused
    # and nothing is created, so the field reached it.
    with pytest.raises(BadRequestError) as refused:
        agent.request_connection(
            "ws-verify", provider_name=testbed.provider("oauth2"), return_url=RETURN_URL, verify=True
        )
    assert refused.value.code == "verifier_not_configured"
    with pytest.raises(BadRequestError) as refused_session:
        agent.create_connect_session("ws-verify", return_url=RETURN_URL, verify=True)
    assert refused_session.value.code == "verifier_not_configured"
    with pytest.raises(NotFoundError) as unknown:
        agent.confirm_connection("no-such-flow", "ws-verify")
    assert unknown.value.code == "confirm_flow_unknown"


def test_connection_lifecycle(testbed: Testbed, agent: NexusClient) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    started = agent.request_connection(workspace, provider_name=testbed.provider("oauth2"), return_url=RETURN_URL)
    assert started.auth_url.startswith("http") and started.connection_id and started.state
    assert agent.check_connection(started.connection_id).status == "pending"

    connection_id = testbed.connection("oauth2")
    assert agent.wait_for_active(connection_id, timeout=5, poll_interval=0.1).is_active
    token = agent.get_token(connection_id)
    assert token.strategy.type == "oauth2" and token.access_token and token.expires_at is not None
    assert "refresh_token" not in token.credentials
    assert token.access_token not in repr(token)
    resolved = agent.resolve_token(testbed.workspace_id, testbed.provider("oauth2"))
    assert resolved.connection_id == connection_id

    fresh = testbed.connect("header")
    revoked = agent.revoke_connection(fresh, reason="sdk test")
    assert (revoked.status, revoked.already_revoked) == ("revoked", False)
    assert agent.revoke_connection(fresh).already_revoked is True
    assert agent.check_connection(fresh).status == "revoked"
    assert "tb-header" in str(agent.list_providers())


def test_agent_login_is_automatic_and_repeated_after_a_401(testbed: Testbed, agent: NexusClient) -> None:
    token = agent.login()
    assert token.access_token not in repr(token)
    # The broker stops accepting the cached token: the client logs in again, once, by itself.
    agent._t._token = AgentToken(
        access_token="not-a-valid-token", token_type="Bearer", expires_in=3600, scope="", obtained_at=token.obtained_at
    )
    assert agent.check_connection(testbed.connection("header")).status == "active"
    assert agent.login().access_token != "not-a-valid-token"


def test_wrong_client_secret_is_an_authentication_error(testbed: Testbed) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    with NexusClient(testbed.broker_url, client_id=testbed.agent["client_id"], client_secret=wrong) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.check_connection(testbed.connection("header"))
    assert caught.value.status == 401
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)


def test_errors_are_typed_with_code_and_request_id(testbed: Testbed, agent: NexusClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        agent.get_token(str(uuid.uuid4()))
    assert (caught.value.status, caught.value.code) == (404, "connection_not_found")
    assert caught.value.request_id
    with NexusClient(testbed.broker_url, api_key="nxa_wrong_key_" + "x" * 20) as wrong:
        with pytest.raises(AuthenticationError) as denied:
            wrong.check_connection(testbed.connection("header"))
    assert denied.value.code == "unauthorized" and "nxa_wrong_key_" not in str(denied.value)


def test_agent_and_obo_sessions(testbed: Testbed, agent: NexusClient) -> None:
    session = agent.request_agent_session(["tb:read"], ttl_seconds=120)
    assert session.scopes_granted == ["tb:read"] and session.status == "active" and not session.obo
    assert session.session_token is None or session.session_token not in repr(session)
    assert agent.get_agent_session(session.session_id).session_id == session.session_id
    assert agent.close_agent_session(session.session_id).status == "closed"

    user_token = testbed.control("POST", "/user-token", {"account_id": testbed.workspace_id})["token"]
    obo = agent.request_obo_session(user_token, ["tb:read", "secrets:read"])
    assert obo.obo and obo.acting_for == testbed.workspace_id and obo.session_token
    # While acting for the user (with secrets:read), the agent resolves that user's secrets in one round trip.
    value = testbed.info["user_secrets"]["db-password"]
    assert_resolved(agent.resolve_secrets(nested_config(), session_token=obo.session_token), value)
    assert agent.get_secret("db-password", session_token=obo.session_token) == value
    agent.close_agent_session(obo.session_id)


def test_secrets_by_grant_and_resolver_over_nested_config(
    testbed: Testbed, agent: NexusClient, admin: NexusAdminClient
) -> None:
    value = testbed.info["user_secrets"]["db-password"]
    assert agent.get_secret("db-password", user_id=testbed.workspace_id) == value
    secret = agent.read_secret("db-password", user_id=testbed.workspace_id)
    assert secret.version >= 1 and value not in repr(secret)
    # An agent with a grant: each referenced name is read through the grant.
    assert_resolved(agent.resolve_secrets(nested_config(), user_id=testbed.workspace_id), value)
    # An operator: the broker resolves the whole config in one call.
    with NexusClient(testbed.broker_url, api_key=testbed.admin_key) as operator:
        assert_resolved(operator.resolve_secrets(nested_config(), user_id=testbed.workspace_id), value)
        with pytest.raises(UnresolvedSecretsError) as caught:
            operator.resolve_secrets({"a": ["nexus-secret:no-such-secret"]}, user_id=testbed.workspace_id)
        assert caught.value.unresolved == [{"name": "no-such-secret", "reason": "not_found"}]
        kept = operator.resolve_secrets(
            {"a": "nexus-secret:no-such-secret"}, user_id=testbed.workspace_id, leave_unresolved=True
        )
        assert kept == {"a": "nexus-secret:no-such-secret"}
    with pytest.raises(UnresolvedSecretsError) as missing:
        agent.resolve_secrets({"x": {"y": "nexus-secret:not-granted"}}, user_id=testbed.workspace_id)
    assert missing.value.unresolved == [{"name": "not-granted", "reason": "not_found"}]
    assert value not in str(missing.value)


def test_admin_client(testbed: Testbed, admin: NexusAdminClient) -> None:
    names = {p.name for p in admin.providers.list()}
    assert {testbed.provider(s) for s in ("oauth2", "header", "aws_sigv4")} <= names
    provider_id = admin.providers.id_by_name("tb-hmac")
    provider = admin.providers.get(provider_id)
    assert provider.auth_type == "hmac_payload" and "client_secret" not in provider.raw

    agent_id = f"sdk-{uuid.uuid4().hex[:10]}"
    created = admin.agents.create(
        agent_id, allowed_scopes=["tb:read"], allowed_providers=["tb-header"], allowed_workspaces=["*"]
    )
    assert created.client_secret and created.client_secret not in repr(created)
    assert agent_id in {a.agent_id for a in admin.agents.list()}
    assert admin.agents.update(agent_id, {"description": "from the Python SDK"}).description == "from the Python SDK"
    with NexusClient(testbed.broker_url, client_id=agent_id, client_secret=created.client_secret) as new_agent:
        assert new_agent.get_token(testbed.connection("header")).strategy.type == "header"
    admin.agents.delete(agent_id)
    with pytest.raises(NotFoundError):
        admin.agents.get(agent_id)

    token = admin.connections.get_token(testbed.connection("basic_auth"))
    assert token.strategy.type == "basic_auth"
    page = admin.audit.list(limit=5)
    assert 0 < len(page.events) <= 5 and page.next_cursor
    events = []
    for event in admin.audit.iter(page_size=3):
        events.append(event)
        if len(events) == 7:
            break
    assert len({e.seq for e in events}) == 7


async def test_async_clients(testbed: Testbed) -> None:
    async with AsyncNexusClient(
        testbed.broker_url, client_id=testbed.agent["client_id"], client_secret=testbed.agent["client_secret"]
    ) as agent:
        assert (await agent.check_connection(testbed.connection("oauth2"))).status == "active"
        token = await agent.get_token(testbed.connection("query_param"))
        assert token.strategy.config["param_name"] == "api_key"
        refreshed = await agent.resolve_token(testbed.workspace_id, testbed.provider("header"))
        assert refreshed.strategy.type == "header"
        value = testbed.info["user_secrets"]["db-password"]
        assert await agent.get_secret("db-password", user_id=testbed.workspace_id) == value
        assert_resolved(await agent.resolve_secrets(nested_config(), user_id=testbed.workspace_id), value)
        offered = await agent.create_connect_session(
            f"ws-{uuid.uuid4().hex[:10]}", providers=[testbed.provider("header")], return_url=RETURN_URL
        )
        assert [name for _, name in offered.providers] == [testbed.provider("header")]
        with pytest.raises(NotFoundError):
            await agent.confirm_connection("no-such-flow", "ws-verify")
        session = await agent.request_agent_session(["tb:write"])
        assert (await agent.close_agent_session(session.session_id)).status == "closed"
        with pytest.raises(NotFoundError):
            await agent.get_token(str(uuid.uuid4()))
    async with AsyncNexusAdminClient(testbed.broker_url, api_key=testbed.admin_key) as admin:
        assert "tb-agent" in {a.agent_id for a in await admin.agents.list()}
        assert any(p.name == "tb-basic" for p in await admin.providers.list())
        assert (await admin.audit.list(limit=2)).events
