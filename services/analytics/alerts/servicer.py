"""gRPC <-> domain translation for ``iot.analytics.v1.AlertService``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, fields
from typing import Any, TypeAlias

from grpc import aio

from iot.analytics.v1 import alerts_pb2, alerts_pb2_grpc
from iotkit.context import current_caller
from iotkit.convert import micros_timestamp, timestamp
from iotkit.listing import pagination
from iotkit.streams import serve_watch
from services.analytics.alerts.service import AlertRuleService
from services.analytics.alerts.values import AlertMessage, Delivery, Rule, RuleSpec

Context: TypeAlias = aio.ServicerContext[Any, Any]


def spec_value(spec: alerts_pb2.AlertRuleSpec) -> RuleSpec:
    """A rule's settings from the request (repeated fields as tuples)."""
    values: dict[str, Any] = {}
    for field in fields(RuleSpec):
        value = getattr(spec, field.name)
        values[field.name] = value if isinstance(value, str | float | int) else tuple(value)
    return RuleSpec(**values)


def rule_message(rule: Rule) -> alerts_pb2.AlertRule:
    """A rule as the API shows it (never its secret)."""
    return alerts_pb2.AlertRule(
        rule_id=rule.id,
        owner_id=rule.owner_id,
        spec=alerts_pb2.AlertRuleSpec(**asdict(rule.spec)),
        firing=rule.state.firing,
        acknowledged=rule.state.acknowledged,
        pending_events=rule.state.pending_events,
        last_sent_at=timestamp(rule.state.last_sent_at),
        created_at=timestamp(rule.created_at),
        updated_at=timestamp(rule.updated_at),
        dead_deliveries=rule.dead_deliveries,
    )


def delivery_message(delivery: Delivery) -> alerts_pb2.Delivery:
    """A delivery with its attempts (neither target secret nor body)."""
    return alerts_pb2.Delivery(
        delivery_id=delivery.id,
        rule_id=delivery.rule_id,
        channel=delivery.channel,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        event_count=delivery.event_count,
        created_at=timestamp(delivery.created_at),
        delivered_at=timestamp(delivery.delivered_at),
        next_attempt_at=timestamp(delivery.next_attempt_at),
        attempt_log=[
            alerts_pb2.DeliveryAttempt(
                attempted_at=timestamp(attempt.at), outcome=attempt.outcome, error=attempt.error
            )
            for attempt in delivery.attempt_log
        ],
    )


def alert_message(message: AlertMessage) -> alerts_pb2.Alert:
    """An alert message for the live feed."""
    event = message.last_event
    return alerts_pb2.Alert(
        alert_id=message.id,
        rule_id=message.rule_id,
        rule_name=message.rule_name,
        kind=message.kind,
        event_count=message.event_count,
        summary=event.summary,
        device_id=event.device_id,
        stream_id=event.stream_id,
        value=event.value,
        first_at=micros_timestamp(message.first_us),
        last_at=micros_timestamp(event.at_us),
        anomaly_id=event.anomaly_id,
        owner_id=message.owner_id,
    )


class AlertServicer(alerts_pb2_grpc.AlertServiceServicer):
    """Each RPC reads its message, calls the rule service and builds the answer."""

    def __init__(self, *, rules: AlertRuleService) -> None:
        self._rules = rules

    async def CreateAlertRule(
        self, request: alerts_pb2.CreateAlertRuleRequest, context: Context
    ) -> alerts_pb2.CreateAlertRuleResponse:
        """Create a rule; its secret is answered this once."""
        rule, secret = await self._rules.create(
            caller=current_caller(), spec=spec_value(request.spec)
        )
        return alerts_pb2.CreateAlertRuleResponse(rule=rule_message(rule), webhook_secret=secret)

    async def ListAlertRules(
        self, request: alerts_pb2.ListAlertRulesRequest, context: Context
    ) -> alerts_pb2.ListAlertRulesResponse:
        """A page of rules."""
        rules, total, page = await self._rules.list_rules(
            caller=current_caller(), page=request.page, limit=request.limit
        )
        return alerts_pb2.ListAlertRulesResponse(
            rules=[rule_message(rule) for rule in rules], pagination=pagination(page, total)
        )

    async def GetAlertRule(
        self, request: alerts_pb2.GetAlertRuleRequest, context: Context
    ) -> alerts_pb2.AlertRule:
        """One rule."""
        return rule_message(await self._rules.get(caller=current_caller(), rule_id=request.rule_id))

    async def UpdateAlertRule(
        self, request: alerts_pb2.UpdateAlertRuleRequest, context: Context
    ) -> alerts_pb2.AlertRule:
        """Change a rule."""
        rule = await self._rules.update(
            caller=current_caller(),
            rule_id=request.rule_id,
            spec=spec_value(request.spec),
            names=list(request.fields),
        )
        return rule_message(rule)

    async def DeleteAlertRule(
        self, request: alerts_pb2.DeleteAlertRuleRequest, context: Context
    ) -> alerts_pb2.DeleteAlertRuleResponse:
        """Delete a rule."""
        deleted = await self._rules.delete(caller=current_caller(), rule_id=request.rule_id)
        return alerts_pb2.DeleteAlertRuleResponse(rule_id=deleted)

    async def RotateWebhookSecret(
        self, request: alerts_pb2.RotateWebhookSecretRequest, context: Context
    ) -> alerts_pb2.RotateWebhookSecretResponse:
        """Replace a rule's signing secret."""
        secret = await self._rules.rotate_secret(caller=current_caller(), rule_id=request.rule_id)
        return alerts_pb2.RotateWebhookSecretResponse(
            rule_id=request.rule_id, webhook_secret=secret
        )

    async def AcknowledgeAlert(
        self, request: alerts_pb2.AcknowledgeAlertRequest, context: Context
    ) -> alerts_pb2.AlertRule:
        """Acknowledge a rule's open alert."""
        return rule_message(
            await self._rules.acknowledge(caller=current_caller(), rule_id=request.rule_id)
        )

    async def ListDeliveries(
        self, request: alerts_pb2.ListDeliveriesRequest, context: Context
    ) -> alerts_pb2.ListDeliveriesResponse:
        """A page of a rule's deliveries."""
        found, total, page = await self._rules.deliveries(
            caller=current_caller(),
            rule_id=request.rule_id,
            page=request.page,
            limit=request.limit,
        )
        return alerts_pb2.ListDeliveriesResponse(
            deliveries=[delivery_message(d) for d in found], pagination=pagination(page, total)
        )

    async def WatchAlerts(
        self, request: alerts_pb2.WatchAlertsRequest, context: Context
    ) -> AsyncIterator[alerts_pb2.Alert]:
        """The caller's alert messages as they are sent."""
        # Watched before the client hears the watch is open.
        messages = self._rules.watch(caller=current_caller(), rule_id=request.rule_id)
        async for message in serve_watch(context, messages, alert_message):
            yield message
