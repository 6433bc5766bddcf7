"""Delivering alert messages: signed webhooks and email, from analytics' outbox of deliveries.

Webhooks. Each call is an HTTPS POST of the message as JSON with these headers:

- ``X-Iot-Timestamp``: the Unix time of the attempt, in seconds;
- ``X-Iot-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the
  rule's signing secret, of ``<timestamp>.<body>`` (the timestamp header, a
  dot, then the exact bytes of the body), so that a receiver can refuse both
  altered bodies and old calls replayed;
- ``X-Iot-Delivery``: the delivery's id (the same on every retry).

Any 2xx answer delivers; anything else, a timeout or a refused address is a
failed attempt, retried with exponential backoff until ``IOT_ALERTS_MAX_ATTEMPTS``
attempts have failed, and then the delivery is dead (listed with its last error).

Deliveries are claimed as soon as they are queued and sent concurrently (up
to :data:`IN_FLIGHT` at once): a receiver that is slow to answer holds up
its own calls only, not the next rule's.

Webhook targets must be public: a host that resolves to a loopback, private,
link-local, multicast, reserved or otherwise non-global address is refused,
when the rule is saved and again at each call, unless the administrator sets
``IOT_ALERTS_ALLOW_PRIVATE_WEBHOOKS=1`` (which also allows plain ``http``).
The call goes to the address that was checked (the Host header and TLS server
name keep the URL's host), so a DNS answer that changes between the check
and the call cannot redirect it; redirects are not followed.

Email goes through the :mod:`iotkit.mail` transport (``IOT_SMTP_URL``, or the log).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx

from iotkit.mail import Transport, compose
from iotkit.outages import log_failed_round
from iotkit.outbox import Backoff, OutboxLoop
from iotkit.sealing import SecretBox
from iotkit.sqltypes import utcnow
from services.analytics.alerts.store import AlertStore
from services.analytics.alerts.values import WEBHOOK, Delivery

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Iot-Signature"
TIMESTAMP_HEADER = "X-Iot-Timestamp"
DELIVERY_HEADER = "X-Iot-Delivery"
WEBHOOK_TIMEOUT = 10.0
BATCH = 50
IN_FLIGHT = 2 * BATCH
"""Deliveries being sent at once, at most."""


class TargetRefused(ValueError):
    """A webhook URL that may not be called; the message says why (shown to the user)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Iot-Signature`` value of ``body`` sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class Target:
    """A checked webhook URL and the address to call it at."""

    url: str
    host: str
    address: str

    def request_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def check_url_form(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook target by its form alone, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "must be a valid URL"
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        return "must be an https URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    if parts.fragment:
        return "must not have a fragment"
    return None


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Check ``url`` and resolve its host; raises TargetRefused when it may not be called."""
    problem = check_url_form(url, allow_private=allow_private)
    if problem:
        raise TargetRefused(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused("host does not resolve") from exc
    addresses = [str(info[4][0]) for info in found]
    if not addresses:
        raise TargetRefused("host does not resolve")
    if not allow_private and not all(_is_public(a) for a in addresses):
        # Every address must be public: a host with one private answer could be made to
        # reach it on some call.
        raise TargetRefused("must not point at a loopback, private or link-local address")
    return Target(url=url, host=host, address=addresses[0])


class DeliveryFailed(Exception):
    """An attempt that did not deliver; the message is safe to store and show."""


class DeliveryWorker:
    """Sends due deliveries in the background; retries and dead-letters failures."""

    def __init__(
        self,
        *,
        store: AlertStore,
        box: SecretBox,
        transport: Transport,
        mail_from: str,
        allow_private: bool,
        backoff: Backoff,
        poll_interval: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._box = box
        self._transport = transport
        self._mail_from = mail_from
        self._allow_private = allow_private
        self._backoff = backoff
        self._clock = clock
        self._http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, follow_redirects=False)
        self._loop = OutboxLoop(
            round=self.deliver_due,
            batch=BATCH,
            poll_interval=poll_interval,
            name="alert-deliveries",
            stop_within=WEBHOOK_TIMEOUT * 2,
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        self._full = False  # a round left due deliveries for want of room

    def notify(self) -> None:
        """Wake the worker: deliveries were queued."""
        self._loop.notify()

    def start(self) -> None:
        """Start sending in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop after the deliveries in flight; close the HTTP client."""
        await self._loop.stop()
        if self._in_flight:
            # A delivery that hangs is cut off: its lease lets a later round retry it.
            _, stuck = await asyncio.wait(set(self._in_flight), timeout=WEBHOOK_TIMEOUT * 2)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await self._http.aclose()

    async def deliver_due(self) -> int:
        """Claim what is due and start sending it; answers how many deliveries were claimed.

        The round does not wait for the calls: a delivery queued while others are being
        sent (a slow receiver takes up to the timeout) is claimed at once, up to
        :data:`IN_FLIGHT` at a time."""
        room = IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            self._full = True  # woken again when one ends
            return 0
        now = self._clock()
        # The lease outlasts an attempt that times out, so no one else claims it meanwhile.
        lease = now + timedelta(seconds=WEBHOOK_TIMEOUT * 3)
        claimed = await self._store.claim_due(now=now, lease_until=lease, limit=min(BATCH, room))
        if self._loop.stopping:
            return len(claimed)  # their leases end and a later start sends them
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name="alert-delivery")
            self._in_flight.add(task)
            task.add_done_callback(self._ended)
        return len(claimed)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Recording the outcome failed (the database away): the lease ends, and a
            # later round sends it again.
            log_failed_round(log, "alert delivery not recorded", exc)
        if self._full:
            self._full = False
            self._loop.notify()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            if delivery.channel == WEBHOOK:
                await self._post(delivery)
            else:
                await self._mail(delivery)
        except Exception as exc:  # any failure is an attempt to retry, never a crash
            error = str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__
            failures = delivery.attempts + 1
            delay = self._backoff.delay(failures)
            retry_at = None if delay is None else self._clock() + timedelta(seconds=delay)
            await self._store.failed(
                delivery_id=delivery.id, error=error, now=self._clock(), retry_at=retry_at
            )
            log.warning(
                "alert delivery failed",
                extra={
                    "delivery_id": delivery.id,
                    "rule_id": delivery.rule_id,
                    "channel": delivery.channel,
                    "attempts": failures,
                    "error": error,
                    "dead": delay is None,
                },
            )
            if delay is not None:
                self._loop.wake_in(delay)
            return
        await self._store.delivered(delivery_id=delivery.id, now=self._clock())

    async def _post(self, delivery: Delivery) -> None:
        sealed = await self._store.sealed_secret(rule_id=delivery.rule_id)
        if sealed is None:
            raise DeliveryFailed("rule has no signing secret")
        try:
            target = await resolve_target(delivery.target, allow_private=self._allow_private)
        except TargetRefused as exc:
            raise DeliveryFailed(f"refused: {exc}") from exc
        body = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()
        stamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "Host": urlsplit(delivery.target).netloc,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._box.open(sealed), stamp, body),
            DELIVERY_HEADER: delivery.id,
            "User-Agent": "iotsuite-alerts/1",
        }
        answer = await self._http.post(
            target.request_url(),
            content=body,
            headers=headers,
            extensions={"sni_hostname": target.host},
        )
        if not 200 <= answer.status_code < 300:
            raise DeliveryFailed(f"HTTP {answer.status_code}")

    async def _mail(self, delivery: Delivery) -> None:
        message = compose(
            sender=self._mail_from,
            to=delivery.target,
            subject=str(delivery.body.get("subject", "iotsuite alert")),
            body=str(delivery.body.get("text", "")),
            created_at=delivery.created_at,
            message_id=delivery.id,
        )
        await self._transport.deliver(message, kind="alert")
