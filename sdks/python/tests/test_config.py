"""Configuration: argument, then environment, then default; a missing credential fails at construction."""

from __future__ import annotations

import pytest

from nexus_sdk import AsyncNexusClient, ConfigurationError, NexusAdminClient, NexusClient


def test_arguments_win_over_the_environment() -> None:
    env = {"NEXUS_URL": "http://env.example:1", "NEXUS_API_KEY": "env-key"}
    client = NexusClient("http://arg.example:2/", api_key="arg-key", env=env)
    assert client.base_url == "http://arg.example:2"
    assert client._t.cfg.api_key == "arg-key"


def test_environment_then_default() -> None:
    env = {"NEXUS_URL": "http://env.example:1", "NEXUS_API_KEY": "env-key"}
    client = NexusClient(env=env)
    assert client.base_url == "http://env.example:1" and client._t.cfg.api_key == "env-key"
    assert NexusClient(env={"NEXUS_API_KEY": "k"}).base_url == "http://127.0.0.1:8080"


def test_the_real_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_URL", "http://from-os-environ:9")
    monkeypatch.setenv("NEXUS_CLIENT_ID", "agent-1")
    monkeypatch.setenv("NEXUS_CLIENT_SECRET", "s3cret-value")
    monkeypatch.delenv("NEXUS_API_KEY", raising=False)
    client = NexusClient()
    assert client.base_url == "http://from-os-environ:9" and client.uses_client_credentials
    assert "s3cret-value" not in repr(client) and "s3cret-value" not in repr(client._t.cfg)


def test_client_credentials_from_the_environment() -> None:
    env = {"NEXUS_CLIENT_ID": "agent-1", "NEXUS_CLIENT_SECRET": "secret-1", "NEXUS_API_KEY": "key"}
    client = NexusClient(env=env)
    assert client.uses_client_credentials and client._t.cfg.client_id == "agent-1"
    # A credential argument replaces the environment's credentials as a whole.
    assert not NexusClient(api_key="arg-key", env=env).uses_client_credentials


def test_missing_credential_names_both_ways_to_set_it() -> None:
    for make in (lambda: NexusClient(env={}), lambda: AsyncNexusClient(env={})):
        with pytest.raises(ConfigurationError) as caught:
            make()
        text = str(caught.value)
        assert "api_key=" in text and "NEXUS_API_KEY" in text
        assert "client_id=" in text and "NEXUS_CLIENT_ID" in text and "NEXUS_CLIENT_SECRET" in text
    with pytest.raises(ConfigurationError, match="NEXUS_API_KEY") as admin:
        NexusAdminClient(env={"NEXUS_CLIENT_ID": "a", "NEXUS_CLIENT_SECRET": "b"})
    assert "api_key=" in str(admin.value)


def test_half_set_client_credentials_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="client_secret is missing") as caught:
        NexusClient(client_id="agent-1", env={})
    assert "NEXUS_CLIENT_SECRET" in str(caught.value)
    with pytest.raises(ConfigurationError, match="client_id is missing"):
        NexusClient(env={"NEXUS_CLIENT_SECRET": "only-the-secret"})


def test_bad_url_and_retry_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        NexusClient("ftp://nexus", api_key="k", env={})
    with pytest.raises(ConfigurationError, match="max_retries"):
        NexusClient(api_key="k", max_retries=-1, env={})
