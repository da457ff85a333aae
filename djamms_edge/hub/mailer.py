"""Sending magic-link mail: stdlib smtplib on a worker thread, or the log when no SMTP is configured.

smtplib rather than aiosmtplib: one short mail per login is rare traffic, a thread
keeps it off the event loop, and it saves a dependency.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from typing import Protocol

from djamms_edge.hub.config import SmtpConfig

log = logging.getLogger(__name__)


class Mailer(Protocol):
    delivers: bool  # False: the mail only reaches the hub's log (no SMTP), not the person it is for

    async def send(self, to: str, subject: str, text: str) -> None: ...


class LogMailer:
    """No SMTP server configured: the mail (with its link) goes to the log for the operator."""

    delivers = False

    async def send(self, to: str, subject: str, text: str) -> None:
        log.warning("no SMTP configured; mail for %s (%s):\n%s", to, subject, text)


class SmtpMailer:
    delivers = True

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        await asyncio.to_thread(self._send_now, message)

    def _send_now(self, message: EmailMessage) -> None:
        cfg = self.config
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
            if cfg.starttls:
                smtp.starttls()
            if cfg.username:
                smtp.login(cfg.username, cfg.password)
            smtp.send_message(message)


def mailer_for(config: SmtpConfig) -> Mailer:
    return SmtpMailer(config) if config.host else LogMailer()
