"""Where alerts go: a webhook (an HTTP POST of JSON, by httpx) or email (SMTP, by smtplib).

A channel sends one :class:`AlertMessage` or raises :class:`AlertDeliveryError`, whose message
is redacted (no webhook URL, header value or SMTP password: see :mod:`featurestore.secrets`).
:func:`channel_of` builds a channel from its settings in ``featurestore.yaml``
(:class:`~featurestore.config.WebhookChannelConfig`, :class:`~featurestore.config.EmailChannelConfig`).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

from featurestore.config import AlertChannelConfig, EmailChannelConfig, WebhookChannelConfig
from featurestore.errors import FeatureStoreError
from featurestore.secrets import redact


@dataclass(frozen=True)
class AlertMessage:
    """One alert: a subject and body for people, and the JSON a webhook receives."""

    subject: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)


class AlertDeliveryError(FeatureStoreError):
    """A channel could not deliver a message (the error says why, without secrets)."""


class AlertChannel(Protocol):
    name: str
    where: str
    """Where it sends, as it may be shown: a webhook's scheme and host, an SMTP server and its recipients."""

    def send(self, message: AlertMessage) -> None: ...


class WebhookChannel:
    """POSTs the message's payload as JSON to the webhook; any 2xx answer is a delivery."""

    def __init__(self, config: WebhookChannelConfig) -> None:
        self.name = config.name
        self._config = config
        parts = urlsplit(config.url)
        self.where = f"webhook {parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"
        self._secrets = [config.url, *(v for v in config.headers.values() if v)]

    def send(self, message: AlertMessage) -> None:
        import httpx

        headers = {"User-Agent": "featurestore-alerts", **self._config.headers}
        try:
            response = httpx.post(
                self._config.url, json=message.payload, headers=headers, timeout=self._config.timeout_seconds
            )
        except httpx.HTTPError as err:
            # Not str(err) alone: some httpx errors quote the URL, which holds the webhook's token.
            raise AlertDeliveryError(self._problem(f"{type(err).__name__}: {err}")) from err
        if not response.is_success:
            raise AlertDeliveryError(self._problem(f"answered HTTP {response.status_code} {response.reason_phrase}"))

    def _problem(self, what: str) -> str:
        return f"{self.where}: {redact(what, extra=self._secrets)}"


class EmailChannel:
    """Mails the message's subject and body to the recipients through the SMTP server."""

    def __init__(self, config: EmailChannelConfig) -> None:
        self.name = config.name
        self._config = config
        self.where = f"email via {config.host}:{config.port} to {', '.join(config.to)}"
        self._secrets = [config.password] if config.password else []

    def send(self, message: AlertMessage) -> None:
        c = self._config
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = c.sender
        mail["To"] = ", ".join(c.to)
        mail.set_content(message.body)
        try:
            smtp: smtplib.SMTP
            if c.ssl:
                smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_seconds, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
            with smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as err:  # smtplib's errors, refused connections, timeouts
            raise AlertDeliveryError(
                f"{self.where}: {redact(f'{type(err).__name__}: {err}', extra=self._secrets)}"
            ) from err


def channel_of(config: AlertChannelConfig) -> AlertChannel:
    """The channel a ``alerts.channels`` entry describes."""
    if isinstance(config, WebhookChannelConfig):
        return WebhookChannel(config)
    return EmailChannel(config)
