"""A real SMTP server on loopback for the messaging tests (aiosmtpd).

It records every message it accepts (envelope and parsed MIME message) and
can be told to refuse: a permanent 550 for some recipients, or a temporary
451 for the first N attempts at some recipients (then accept). It offers
PIPELINING (RFC 2920; aiosmtpd reads pipelined commands in order), so
herald runs its own pipelined transactions against an SMTP implementation
that is not its own. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from aiosmtpd.controller import Controller

from harness import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    message: email.message.EmailMessage
    raw: bytes

    def part(self, content_type: str) -> Optional[str]:
        for p in self.message.walk():
            if p.get_content_type() == content_type and not p.is_multipart():
                return p.get_content()
        return None


@dataclass
class Handler:
    received: list = field(default_factory=list)
    # address -> reply for RCPT TO, for good
    refuse: dict = field(default_factory=dict)
    # address -> how many more RCPT attempts get a 451
    transient: dict = field(default_factory=dict)
    attempts: dict = field(default_factory=dict)
    # transactions whose RCPT had arrived with their MAIL (pipelined)
    pipelined: int = 0
    # seconds each DATA takes to answer (a slow mail server)
    data_delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # aiosmtpd's reader is private; peeking at it is how this test peer
        # tells a pipelined client from a lock-step one.
        buffered = bytes(getattr(getattr(server, "_reader", None), "_buffer", b""))
        if buffered.upper().startswith(b"RCPT"):
            with self.lock:
                self.pipelined += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.attempts[address] = self.attempts.get(address, 0) + 1
            if address in self.refuse:
                return self.refuse[address]
            left = self.transient.get(address, 0)
            if left > 0:
                self.transient[address] = left - 1
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), msg, envelope.content)
            )
        return "250 Message accepted for delivery"


class SmtpPeer:
    def __init__(self, data_delay_s: float = 0.0):
        self.handler = Handler(data_delay_s=data_delay_s)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> "SmtpPeer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}/herald.test"

    def messages_to(self, address: str) -> list:
        with self.handler.lock:
            return [m for m in self.handler.received if address in m.rcpt_tos]

    def all(self) -> list:
        with self.handler.lock:
            return list(self.handler.received)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.all()
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.all()
