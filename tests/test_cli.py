"""The `lienthong` command's own rules (services/cli.py); the commands themselves run in the e2e tests
and beside what they operate on (outbox, blobs)."""

from __future__ import annotations

import ipaddress

import pytest

from services.cli import development_webhooks
from services.settings import Settings

LOCAL = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def test_lienthong_dev_lets_webhooks_point_to_this_machine() -> None:
    webhooks = development_webhooks(Settings()).webhooks
    assert webhooks.allow_http is True
    assert webhooks.allowed_networks == LOCAL
    assert Settings().webhooks.allow_http is False and Settings().webhooks.allowed_networks == []  # elsewhere


def test_lienthong_dev_keeps_the_webhook_policy_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_WEBHOOKS__ALLOW_HTTP", "false")
    webhooks = development_webhooks(Settings()).webhooks
    assert webhooks.allow_http is False
    assert webhooks.allowed_networks == LOCAL

    monkeypatch.delenv("LIENTHONG_WEBHOOKS__ALLOW_HTTP")
    monkeypatch.setenv("LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS", '["192.168.50.0/24"]')
    webhooks = development_webhooks(Settings()).webhooks
    assert webhooks.allow_http is True
    assert webhooks.allowed_networks == [ipaddress.ip_network("192.168.50.0/24")]

    monkeypatch.setenv("LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS", "[]")  # explicitly none
    assert development_webhooks(Settings()).webhooks.allowed_networks == []
