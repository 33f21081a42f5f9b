"""The ``alerts`` section of featurestore.yaml: channels read and validated, errors naming the key
and what to do, and the channels' secrets hidden from repr and from redacted text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from featurestore.config import EmailChannelConfig, ProjectConfig, WebhookChannelConfig
from featurestore.errors import ConfigError
from featurestore.secrets import redact

FILE = Path("featurestore.yaml")


def load(alerts: Any) -> ProjectConfig:
    return ProjectConfig.from_mapping({"project": "p", "alerts": alerts}, root=Path("."), file=FILE)


def test_webhook_and_email_channels_are_read_and_their_secrets_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "tok-1b2c3d4e5f")
    monkeypatch.setenv("SMTP_PASSWORD", "pw-9z8y7x")
    config = load(
        {
            "max_attempts": 4,
            "channels": [
                {
                    "type": "webhook",
                    "url": "https://hooks.example.com/T0/${HOOK_TOKEN}",
                    "headers": {"X-Key": "k-5566"},
                },
                {
                    "type": "email",
                    "name": "oncall",
                    "host": "smtp.example.com",
                    "port": 587,
                    "from": "fs@example.com",
                    "to": "oncall@example.com",
                    "username": "fs",
                    "password": "${SMTP_PASSWORD}",
                    "starttls": True,
                },
            ],
        }
    )
    hook, mail = config.alerts.channels
    assert isinstance(hook, WebhookChannelConfig) and isinstance(mail, EmailChannelConfig)
    assert (hook.name, mail.name, mail.sender, mail.to, config.alerts.max_attempts) == (
        "webhook",
        "oncall",
        "fs@example.com",
        ("oncall@example.com",),
        4,
    )
    shown = repr(config)
    for secret in ("tok-1b2c3d4e5f", "pw-9z8y7x", "k-5566", "https://hooks.example.com/T0/"):
        assert secret not in shown
        assert secret not in redact("POST https://hooks.example.com/T0/tok-1b2c3d4e5f failed; key k-5566; pw-9z8y7x")
    assert load({}).alerts.channels == ()


@pytest.mark.parametrize(
    ("alerts", "key", "words"),
    [
        ({"channels": {"type": "webhook"}}, "alerts.channels", "must be a list of channels"),
        ({"channels": [{"url": "https://h/x"}]}, "alerts.channels[0].type", "is required: webhook or email"),
        ({"channels": [{"type": "webhok"}]}, "alerts.channels[0].type", "Did you mean 'webhook'?"),
        ({"channels": [{"type": "webhook"}]}, "alerts.channels[0].url", "is required: an http:// or https:// URL"),
        ({"channels": [{"type": "webhook", "url": "hooks.example.com"}]}, "alerts.channels[0].url", "must be an http"),
        (
            {"channels": [{"type": "email", "host": "h", "to": ["a@b.c"]}]},
            "alerts.channels[0].from",
            "is required: the sender's address",
        ),
        (
            {"channels": [{"type": "email", "host": "h", "from": "a@b.c", "to": []}]},
            "alerts.channels[0].to",
            "must not be empty",
        ),
        (
            {
                "channels": [
                    {"type": "email", "host": "h", "from": "a@b.c", "to": "x@y.z", "ssl": True, "starttls": True}
                ]
            },
            "alerts.channels[0].ssl",
            "choose one",
        ),
        (
            {"channels": [{"type": "email", "host": "h", "from": "a@b.c", "to": "x@y.z", "passwd": "x"}]},
            "alerts.channels[0].passwd",
            "Did you mean 'password'?",
        ),
        (
            {"channels": [{"type": "webhook", "url": "https://a/1"}, {"type": "webhook", "url": "https://b/2"}]},
            "alerts.channels[1].name",
            "give each channel its own name",
        ),
        ({"max_attempts": 0}, "alerts.max_attempts", "must be at least 1"),
        ([], "alerts", "must be a mapping"),
    ],
)
def test_a_wrong_alerts_section_names_the_key_and_what_to_do(alerts: Any, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(alerts)
    assert raised.value.key == key
    assert words in str(raised.value)
    assert str(FILE) in str(raised.value)


def test_a_mistyped_webhook_url_or_header_is_not_quoted_in_the_error() -> None:
    with pytest.raises(ConfigError) as no_scheme:
        load({"channels": [{"type": "webhook", "url": "hooks.slack.com/services/T0/B0/supersecrettoken"}]})
    assert "http:// or https://" in str(no_scheme.value)
    assert "supersecrettoken" not in str(no_scheme.value)
    with pytest.raises(ConfigError) as header:
        load(
            {"channels": [{"type": "webhook", "url": "https://h.example.com/x", "headers": {"Authorization": 1234567}}]}
        )
    assert "1234567" not in str(header.value)


def test_an_smtp_login_without_tls_is_refused_except_on_this_machine() -> None:
    channel = {"type": "email", "host": "smtp.example.com", "from": "a@b.example", "to": ["x@y.example"]}
    with pytest.raises(ConfigError) as clear:
        load({"channels": [{**channel, "username": "fs", "password": "pw"}]})
    assert "starttls: true" in str(clear.value) and "alerts.channels[0]" in str(clear.value)
    assert "pw" not in str(clear.value).replace("password", "")
    load({"channels": [{**channel, "username": "fs", "password": "pw", "starttls": True}]})
    load({"channels": [{**channel, "host": "127.0.0.1", "username": "fs", "password": "pw"}]})
