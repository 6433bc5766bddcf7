"""Reconciling the MQTT broker with the registry: every working credential on the broker,
no other device there.

Credentials are provisioned on the broker as they are issued, rotated and
revoked (``services.devices.broker``), but a credential issued while no
broker was configured, or while it was away, never reached it, a broker
restarted without its state has lost them all, and a revocation the broker
missed leaves a device connected. So each time devices connects to the broker
(at start, and when it is back after an outage) it reconciles, in pages of
``batch`` devices, one dynsec command list per page:

- a working credential whose device is not a broker client, or whose token
  the broker was never given (a failed grant), is granted from the token
  sealed beside it; a credential issued before tokens were kept cannot be
  (it is counted, and logged: its device needs a new credential for MQTT);
- a broker client named by a device id whose device has no working
  credential (revoked, expired, decommissioned) is removed.

Running it again changes nothing. A credential issued or revoked while a
page is reconciled is not undone: after each command list the page's
devices are read again and any whose working credential changed is settled
once more (the issuer tells the broker itself after its commit, so whichever
writes last writes the registry's state).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from iotkit.sealing import DecryptionError, SecretBox
from iotkit.sqltypes import utcnow
from services.devices.broker import DynsecBroker
from services.devices.devices.store import BrokerCredential, DeviceStore

log = logging.getLogger(__name__)

BATCH = 200
"""Devices settled per dynsec command list."""
ROUNDS = 3
"""Times a page is read again while credentials change under it."""
SEAL_PURPOSE = "devices/mqtt-password"
"""The purpose of the key that seals credentials' tokens (``iotkit.sealing``)."""


@dataclass
class Reconciled:
    """What a reconciliation did."""

    granted: int = 0
    removed: int = 0
    unrecoverable: int = 0
    """Working credentials with no sealed token (issued before tokens were kept)."""


def _is_device(name: str) -> bool:
    """Device clients are named by the device's UUID (telemetry's and the administrator's
    are not)."""
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


class BrokerSync:
    """Reconciles the broker's clients with the registry's working credentials."""

    def __init__(
        self,
        *,
        store: DeviceStore,
        broker: DynsecBroker,
        box: SecretBox,
        batch: int = BATCH,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._broker = broker
        self._box = box
        self._batch = batch
        self._clock = clock

    async def reconcile(self) -> Reconciled:
        """Put every working credential on the broker and take every other device off."""
        done = Reconciled()
        present = {name for name in await self._broker.client_names() if _is_device(name)}
        working: set[str] = set()
        after = ""
        while page := await self._store.broker_credentials_after(
            after=after, limit=self._batch, now=self._clock()
        ):
            after = page[-1].device_id
            ids = [credential.device_id for credential in page]
            working.update(ids)
            await self._settle(ids, present, done)
        stale = sorted(present - working)
        for start in range(0, len(stale), self._batch):
            await self._settle(stale[start : start + self._batch], present, done)
        if done.granted or done.removed or done.unrecoverable:
            log.info(
                "MQTT broker reconciled: %d credentials granted, %d devices removed, "
                "%d credentials issued before tokens were kept (their devices need a new "
                "credential for MQTT)",
                done.granted,
                done.removed,
                done.unrecoverable,
            )
        return done

    async def _settle(self, device_ids: list[str], present: set[str], done: Reconciled) -> None:
        """Bring ``device_ids`` on the broker in line with their working credentials."""
        put: dict[str, str] = {}  # device -> the credential whose token the broker holds
        unrecoverable: set[str] = set()
        pending = device_ids
        for _ in range(ROUNDS):
            current = await self._store.broker_credentials(device_ids=pending, now=self._clock())
            grants: list[tuple[str, str]] = []
            granted: list[BrokerCredential] = []
            revokes: list[str] = []
            for device_id in pending:
                credential = current.get(device_id)
                if credential is None:
                    if device_id in present:
                        revokes.append(device_id)
                elif put.get(device_id) == credential.credential_id or (
                    device_id in present
                    and device_id not in put
                    and (credential.on_broker or credential.sealed_token is None)
                ):
                    # The broker holds this credential's token (one issued before tokens
                    # were kept, present there, was granted when it was issued).
                    continue
                elif (password := self._password(credential)) is None:
                    unrecoverable.add(device_id)
                else:
                    grants.append((device_id, password))
                    granted.append(credential)
            if not grants and not revokes:
                break
            await self._broker.apply(grants=grants, revokes=revokes)
            await self._store.mark_on_broker(credential_ids=[c.credential_id for c in granted])
            done.granted += len(grants)
            done.removed += len(revokes)
            present.difference_update(revokes)
            present.update(device for device, _ in grants)
            put.update({c.device_id: c.credential_id for c in granted})
            for device_id in revokes:
                put.pop(device_id, None)
            # Read again what changed here: a credential issued or revoked meanwhile.
            pending = [device for device, _ in grants] + revokes
        done.unrecoverable += len(unrecoverable)

    def _password(self, credential: BrokerCredential) -> str | None:
        if credential.sealed_token is None:
            return None
        try:
            return self._box.open(credential.sealed_token)
        except DecryptionError:  # IOT_SECRET_KEY changed since it was sealed
            return None


def seal_box(service_secret: str) -> SecretBox:
    """The box that seals credentials' tokens for the broker."""
    return SecretBox(service_secret, purpose=SEAL_PURPOSE)
