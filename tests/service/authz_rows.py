"""The authorization matrix: one row for every RPC of the suite and every REST route.

A row says who may call: ``public`` (with the reason), the token types an RPC
takes, whether it needs the ``admin`` scope, and, for an RPC that names a
user's resource, the request naming another user's one (which must answer
NOT_FOUND). ``tests/service/test_authz_matrix.py`` checks the running suite
against these rows, and fails when an RPC or a route has no row: a new RPC
or route is added here, with the reason when it is public.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from iot.analytics.v1 import alerts_pb2, analytics_pb2
from iot.auth.v1 import security_pb2
from iot.chat.v1 import chat_pb2
from iot.devices.v1 import devices_pb2
from iot.telemetry.v1 import imports_pb2, telemetry_pb2

ACCESS = frozenset({"access"})


@dataclass(frozen=True)
class Resources:
    """What the owner made, which another user must not reach."""

    device_id: str
    stream_id: str
    other_stream_id: str
    anomaly_id: str
    correlation_id: str
    batch_id: str
    file_id: str
    session_id: str
    chat_session_id: str
    alert_rule_id: str


OwnedRequest = Callable[[Resources], Message]
"""Builds a valid request that names the owner's resource."""


@dataclass(frozen=True)
class Row:
    """Who may call one RPC."""

    tokens: frozenset[str] = ACCESS
    """Token types the RPC takes; every other type is UNAUTHENTICATED."""
    admin: bool = False
    """An access token without the ``admin`` scope is PERMISSION_DENIED."""
    public: str = ""
    """Why anyone may call it without a token (empty: a token is required)."""
    token_optional: bool = False
    """Public, yet a token that is sent is verified (a bad one is UNAUTHENTICATED)."""
    owned: OwnedRequest | None = None
    """A request naming the owner's resource: another user gets NOT_FOUND."""
    filtered: OwnedRequest | None = None
    """A list filtered by the owner's resource: another user gets none of the owner's rows."""


def user(
    owned: OwnedRequest | None = None, *, also: str = "", filtered: OwnedRequest | None = None
) -> Row:
    """An RPC for signed-in users (access tokens, and the types in ``also``)."""
    return Row(tokens=ACCESS | frozenset(also.split()), owned=owned, filtered=filtered)


def admin() -> Row:
    """An RPC for administrators only."""
    return Row(admin=True)


def service() -> Row:
    """An RPC for the suite's own processes (service tokens only)."""
    return Row(tokens=frozenset({"service"}))


def public(reason: str, *, owned: OwnedRequest | None = None, optional: bool = False) -> Row:
    """An RPC anyone may call, and why."""
    return Row(tokens=ACCESS, public=reason, token_optional=optional, owned=owned)


def naming(
    request: Callable[..., Message], field: str, resource: str = "", **extra: object
) -> OwnedRequest:
    """A ``request`` whose ``field`` holds the owner's ``resource`` (an attribute of
    :class:`Resources`; by default the field's own name), with the ``extra`` fields set."""
    return lambda r: request(**{field: getattr(r, resource or field)}, **extra)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


_HEALTH = "probes (load balancers, Kubernetes, the launcher) call it without credentials"
_REFLECTION = "grpcurl and other tools list the API; it describes the protos, no data"
_CHAT = "the support chat works for visitors who are not signed in; a sent token is verified"

RPCS: dict[str, Row] = {
    # Infrastructure every process serves.
    "/grpc.health.v1.Health/Check": public(_HEALTH),
    "/grpc.health.v1.Health/Watch": public(_HEALTH),
    "/grpc.health.v1.Health/List": public(_HEALTH),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": public(_REFLECTION),
    "/iot.system.v1.DiagnosticsService/GetProcessStatus": service(),
    "/iot.system.v1.SystemService/GetSystemStatus": public(
        "the status page is shown before anyone signs in; it names no user and no secret"
    ),
    # auth
    "/iot.auth.v1.AuthService/Register": public("creating an account needs no account"),
    "/iot.auth.v1.AuthService/Login": public("the way to get a token"),
    "/iot.auth.v1.AuthService/RefreshToken": public(
        "the refresh token in the body is the credential (verified by the service)"
    ),
    "/iot.auth.v1.AuthService/Logout": user(),
    "/iot.auth.v1.AuthService/GetMe": user(),
    "/iot.auth.v1.AuthService/GetTokenInfo": user(also="device site service"),
    "/iot.auth.v1.AuthService/IssueServiceToken": public(
        "the service secret in the body is the credential (verified by the service)"
    ),
    "/iot.auth.v1.AuthService/IssueDeviceToken": service(),
    "/iot.auth.v1.AuthService/ListRevokedSessions": service(),
    "/iot.auth.v1.AuthService/GetJwks": public("public keys, fetched by any JWT library"),
    "/iot.auth.v1.AuthService/VerifyEmail": public("the emailed link token is the credential"),
    "/iot.auth.v1.AuthService/ResendVerification": user(),
    "/iot.auth.v1.AuthService/ForgotPassword": public("whoever forgot a password has no token"),
    "/iot.auth.v1.AuthService/ResetPassword": public("the emailed link token is the credential"),
    "/iot.auth.v1.AuthService/ChangePassword": user(),
    "/iot.auth.v1.AdminService/ListUsers": admin(),
    "/iot.auth.v1.AdminService/GetUser": admin(),
    "/iot.auth.v1.AdminService/UpdateUser": admin(),
    "/iot.auth.v1.DataService/RequestDataDownload": user(),
    "/iot.auth.v1.DataService/RequestOfflineData": user(),
    "/iot.auth.v1.DataService/DownloadExport": public(
        "a signed, expiring link, like a presigned URL (verified by the service)"
    ),
    "/iot.auth.v1.MfaService/SetupMfa": user(),
    "/iot.auth.v1.MfaService/EnableMfa": user(),
    "/iot.auth.v1.MfaService/DisableMfa": user(),
    "/iot.auth.v1.MfaService/RegenerateRecoveryCodes": user(),
    "/iot.auth.v1.ProfileService/GetProfile": user(),
    "/iot.auth.v1.ProfileService/UpdateProfile": user(),
    "/iot.auth.v1.SecurityService/ListSecurityLogs": user(),
    "/iot.auth.v1.SecurityService/ListSessions": user(),
    "/iot.auth.v1.SecurityService/RevokeSession": user(
        naming(security_pb2.RevokeSessionRequest, "session_id")
    ),
    "/iot.auth.v1.SecurityService/RevokeOtherSessions": user(),
    "/iot.auth.v1.AccountService/CreateAccount": admin(),
    "/iot.auth.v1.AccountService/ListAccounts": admin(),
    "/iot.auth.v1.AccountService/GetAccount": admin(),
    "/iot.auth.v1.AccountService/UpdateAccount": admin(),
    "/iot.auth.v1.AccountService/CreateSite": admin(),
    "/iot.auth.v1.AccountService/ListSites": admin(),
    "/iot.auth.v1.AccountService/GetSite": admin(),
    "/iot.auth.v1.AccountService/UpdateSite": admin(),
    "/iot.auth.v1.AccountService/RotateSiteSecret": admin(),
    "/iot.auth.v1.SiteTokenService/IssueSiteToken": public(
        "the site's client secret in the body is the credential (verified by the service)"
    ),
    # devices
    "/iot.devices.v1.DeviceService/RegisterDevice": user(),
    "/iot.devices.v1.DeviceService/ListDevices": user(),
    "/iot.devices.v1.DeviceService/GetDevice": user(
        naming(devices_pb2.GetDeviceRequest, "device_id")
    ),
    "/iot.devices.v1.DeviceService/UpdateDevice": user(
        naming(devices_pb2.UpdateDeviceRequest, "device_id", name="Taken over")
    ),
    "/iot.devices.v1.DeviceService/DecommissionDevice": user(
        naming(devices_pb2.DecommissionDeviceRequest, "device_id")
    ),
    "/iot.devices.v1.DeviceService/IssueDeviceCredential": user(
        naming(devices_pb2.IssueDeviceCredentialRequest, "device_id", valid_days=1)
    ),
    "/iot.devices.v1.DeviceService/RevokeDeviceCredential": user(
        naming(devices_pb2.RevokeDeviceCredentialRequest, "device_id")
    ),
    "/iot.devices.v1.DeviceService/ImportDevices": user(),
    "/iot.devices.v1.DeviceService/CheckDeviceAccess": user(also="device site service"),
    "/iot.devices.v1.DeviceService/RecordDeviceActivity": service(),
    "/iot.devices.v1.DeviceService/ListDeviceEvents": service(),
    # telemetry
    "/iot.telemetry.v1.TelemetryService/StreamReadings": user(also="device site"),
    "/iot.telemetry.v1.TelemetryService/UploadReadings": user(
        lambda r: telemetry_pb2.UploadReadingsRequest(
            device_id=r.device_id,
            metric_name="temperature",
            readings=[telemetry_pb2.Reading(timestamp=_now(), value=1.0)],
        ),
        also="device site",
    ),
    "/iot.telemetry.v1.TelemetryService/CreateStream": user(
        naming(telemetry_pb2.CreateStreamRequest, "device_id", metric_name="pressure")
    ),
    "/iot.telemetry.v1.TelemetryService/ListStreams": user(
        naming(telemetry_pb2.ListStreamsRequest, "device_id")
    ),
    "/iot.telemetry.v1.TelemetryService/GetStream": user(
        naming(telemetry_pb2.GetStreamRequest, "stream_id")
    ),
    "/iot.telemetry.v1.TelemetryService/UpdateStream": user(
        naming(telemetry_pb2.UpdateStreamRequest, "stream_id", retention_days=7)
    ),
    "/iot.telemetry.v1.TelemetryService/GetStreamData": user(
        naming(telemetry_pb2.GetStreamDataRequest, "stream_id")
    ),
    "/iot.telemetry.v1.TelemetryService/WatchStreamReadings": user(
        naming(telemetry_pb2.WatchStreamReadingsRequest, "stream_id")
    ),
    "/iot.telemetry.v1.TelemetryService/ReadStream": user(
        naming(telemetry_pb2.ReadStreamRequest, "stream_id"), also="service"
    ),
    "/iot.telemetry.v1.ImportService/CreateBatch": user(
        naming(imports_pb2.CreateBatchRequest, "device_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/ListBatches": user(also="site"),
    "/iot.telemetry.v1.ImportService/GetBatch": user(
        naming(imports_pb2.GetBatchRequest, "batch_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/CompleteBatch": user(
        naming(imports_pb2.CompleteBatchRequest, "batch_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/CancelBatch": user(
        naming(imports_pb2.CancelBatchRequest, "batch_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/ListBatchFiles": user(
        naming(imports_pb2.ListBatchFilesRequest, "batch_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/ListBatchErrors": user(
        naming(imports_pb2.ListBatchErrorsRequest, "batch_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/CreateUpload": user(
        lambda r: imports_pb2.CreateUploadRequest(
            batch_id=r.batch_id,
            device_id=r.device_id,
            metric_name="temperature",
            filename="taken.csv",
            format="csv",
        ),
        also="site",
    ),
    "/iot.telemetry.v1.ImportService/UploadContent": user(
        naming(imports_pb2.UploadContentChunk, "file_id", data=b"timestamp,value\n"),
        also="site",
    ),
    "/iot.telemetry.v1.ImportService/GetUpload": user(
        naming(imports_pb2.GetUploadRequest, "file_id"), also="site"
    ),
    "/iot.telemetry.v1.ImportService/ListUploadErrors": user(
        naming(imports_pb2.ListUploadErrorsRequest, "file_id"), also="site"
    ),
    # analytics
    "/iot.analytics.v1.AnalyticsService/AnalyzeReadings": service(),
    "/iot.analytics.v1.AnalyticsService/ForgetDevice": service(),
    "/iot.analytics.v1.AnalyticsService/ListAnomalies": user(
        filtered=naming(analytics_pb2.ListAnomaliesRequest, "device_id")
    ),
    "/iot.analytics.v1.AnalyticsService/ExportAnomalies": user(
        filtered=naming(analytics_pb2.ExportRequest, "stream_id", format="csv")
    ),
    "/iot.analytics.v1.AnalyticsService/WatchAnomalies": user(),
    "/iot.analytics.v1.AnalyticsService/GetAnomaly": user(
        naming(analytics_pb2.GetAnomalyRequest, "anomaly_id")
    ),
    "/iot.analytics.v1.AnalyticsService/ReviewAnomaly": user(
        naming(analytics_pb2.ReviewAnomalyRequest, "anomaly_id", status="confirmed")
    ),
    "/iot.analytics.v1.AnalyticsService/GetDetector": user(
        naming(analytics_pb2.GetDetectorRequest, "stream_id")
    ),
    "/iot.analytics.v1.AnalyticsService/UpdateDetector": user(
        naming(analytics_pb2.UpdateDetectorRequest, "stream_id", threshold=4.0)
    ),
    "/iot.analytics.v1.AnalyticsService/GetScores": user(
        naming(analytics_pb2.GetScoresRequest, "stream_id")
    ),
    "/iot.analytics.v1.AnalyticsService/CreateCorrelation": user(
        lambda r: analytics_pb2.CreateCorrelationRequest(
            stream_a=r.stream_id,
            stream_b=r.other_stream_id,
            window_start=timestamp_pb2.Timestamp(seconds=_now().seconds - 3600),
            window_end=_now(),
            algorithm="pearson",
        )
    ),
    "/iot.analytics.v1.AnalyticsService/ListCorrelations": user(
        filtered=naming(analytics_pb2.ListCorrelationsRequest, "stream_id")
    ),
    "/iot.analytics.v1.AnalyticsService/ExportCorrelations": user(
        filtered=naming(analytics_pb2.ExportRequest, "stream_id", format="csv")
    ),
    "/iot.analytics.v1.AnalyticsService/GetCorrelation": user(
        naming(analytics_pb2.GetCorrelationRequest, "correlation_id")
    ),
    "/iot.analytics.v1.AlertService/CreateAlertRule": user(),
    "/iot.analytics.v1.AlertService/ListAlertRules": user(),
    "/iot.analytics.v1.AlertService/GetAlertRule": user(
        naming(alerts_pb2.GetAlertRuleRequest, "rule_id", "alert_rule_id")
    ),
    "/iot.analytics.v1.AlertService/UpdateAlertRule": user(
        naming(alerts_pb2.UpdateAlertRuleRequest, "rule_id", "alert_rule_id", fields=["paused"])
    ),
    "/iot.analytics.v1.AlertService/DeleteAlertRule": user(
        naming(alerts_pb2.DeleteAlertRuleRequest, "rule_id", "alert_rule_id")
    ),
    "/iot.analytics.v1.AlertService/RotateWebhookSecret": user(
        naming(alerts_pb2.RotateWebhookSecretRequest, "rule_id", "alert_rule_id")
    ),
    "/iot.analytics.v1.AlertService/AcknowledgeAlert": user(
        naming(alerts_pb2.AcknowledgeAlertRequest, "rule_id", "alert_rule_id")
    ),
    "/iot.analytics.v1.AlertService/ListDeliveries": user(
        naming(alerts_pb2.ListDeliveriesRequest, "rule_id", "alert_rule_id")
    ),
    "/iot.analytics.v1.AlertService/WatchAlerts": user(),
    # chat
    "/iot.chat.v1.ChatService/CreateSession": public(_CHAT, optional=True),
    "/iot.chat.v1.ChatService/ListSessions": user(),
    "/iot.chat.v1.ChatService/GetSession": public(
        _CHAT,
        optional=True,
        owned=naming(chat_pb2.GetSessionRequest, "session_id", "chat_session_id"),
    ),
    "/iot.chat.v1.ChatService/SendMessage": public(
        _CHAT,
        optional=True,
        owned=naming(chat_pb2.SendMessageRequest, "session_id", "chat_session_id", content="hi"),
    ),
    "/iot.chat.v1.ChatService/EndSession": public(
        _CHAT,
        optional=True,
        owned=naming(chat_pb2.EndSessionRequest, "session_id", "chat_session_id"),
    ),
    "/iot.chat.v1.ChatService/WatchSession": public(
        _CHAT,
        optional=True,
        owned=naming(chat_pb2.WatchSessionRequest, "session_id", "chat_session_id"),
    ),
    "/iot.chat.v1.ChatService/ListEscalations": admin(),
    "/iot.chat.v1.ChatService/WatchQueue": admin(),
    "/iot.chat.v1.ChatService/SendAgentMessage": admin(),
    "/iot.chat.v1.ChatService/ResolveEscalation": admin(),
    "/iot.chat.v1.ChatService/ListHelpArticles": public("help articles are for everyone"),
    "/iot.chat.v1.ChatService/GetHelpArticle": public("help articles are for everyone"),
}
"""Every RPC any process serves, by gRPC method path."""

ROUTES: dict[str, str] = {
    "GET /.well-known/jwks.json": "/iot.auth.v1.AuthService/GetJwks",
    "POST /v1/admin/accounts": "/iot.auth.v1.AccountService/CreateAccount",
    "GET /v1/admin/accounts": "/iot.auth.v1.AccountService/ListAccounts",
    "GET /v1/admin/accounts/{account_id}": "/iot.auth.v1.AccountService/GetAccount",
    "PATCH /v1/admin/accounts/{account_id}": "/iot.auth.v1.AccountService/UpdateAccount",
    "POST /v1/admin/accounts/{account_id}/sites": "/iot.auth.v1.AccountService/CreateSite",
    "GET /v1/admin/accounts/{account_id}/sites": "/iot.auth.v1.AccountService/ListSites",
    "GET /v1/admin/sites/{site_id}": "/iot.auth.v1.AccountService/GetSite",
    "PATCH /v1/admin/sites/{site_id}": "/iot.auth.v1.AccountService/UpdateSite",
    "POST /v1/admin/sites/{site_id}/rotate-secret": "/iot.auth.v1.AccountService/RotateSiteSecret",
    "GET /v1/admin/users": "/iot.auth.v1.AdminService/ListUsers",
    "GET /v1/admin/users/{uuid}": "/iot.auth.v1.AdminService/GetUser",
    "PATCH /v1/admin/users/{uuid}": "/iot.auth.v1.AdminService/UpdateUser",
    "GET /v1/anomalies": "/iot.analytics.v1.AnalyticsService/ListAnomalies",
    "GET /v1/anomalies/export": "/iot.analytics.v1.AnalyticsService/ExportAnomalies",
    "GET /v1/anomalies/{anomaly_id}": "/iot.analytics.v1.AnalyticsService/GetAnomaly",
    "PATCH /v1/anomalies/{anomaly_id}": "/iot.analytics.v1.AnalyticsService/ReviewAnomaly",
    "GET /v1/anomalies:watch": "/iot.analytics.v1.AnalyticsService/WatchAnomalies",
    "POST /v1/auth/change-password": "/iot.auth.v1.AuthService/ChangePassword",
    "POST /v1/auth/forgot-password": "/iot.auth.v1.AuthService/ForgotPassword",
    "POST /v1/auth/login": "/iot.auth.v1.AuthService/Login",
    "POST /v1/auth/logout": "/iot.auth.v1.AuthService/Logout",
    "GET /v1/auth/me": "/iot.auth.v1.AuthService/GetMe",
    "POST /v1/auth/mfa/disable": "/iot.auth.v1.MfaService/DisableMfa",
    "POST /v1/auth/mfa/enable": "/iot.auth.v1.MfaService/EnableMfa",
    "POST /v1/auth/mfa/recovery-codes": "/iot.auth.v1.MfaService/RegenerateRecoveryCodes",
    "POST /v1/auth/mfa/setup": "/iot.auth.v1.MfaService/SetupMfa",
    "POST /v1/auth/refresh": "/iot.auth.v1.AuthService/RefreshToken",
    "POST /v1/auth/register": "/iot.auth.v1.AuthService/Register",
    "POST /v1/auth/resend-verification": "/iot.auth.v1.AuthService/ResendVerification",
    "POST /v1/auth/reset-password": "/iot.auth.v1.AuthService/ResetPassword",
    "GET /v1/auth/token-info": "/iot.auth.v1.AuthService/GetTokenInfo",
    "POST /v1/auth/verify-email": "/iot.auth.v1.AuthService/VerifyEmail",
    "POST /v1/batches": "/iot.telemetry.v1.ImportService/CreateBatch",
    "GET /v1/batches": "/iot.telemetry.v1.ImportService/ListBatches",
    "GET /v1/batches/{batch_id}": "/iot.telemetry.v1.ImportService/GetBatch",
    "POST /v1/batches/{batch_id}/cancel": "/iot.telemetry.v1.ImportService/CancelBatch",
    "POST /v1/batches/{batch_id}/complete": "/iot.telemetry.v1.ImportService/CompleteBatch",
    "GET /v1/batches/{batch_id}/errors": "/iot.telemetry.v1.ImportService/ListBatchErrors",
    "GET /v1/batches/{batch_id}/files": "/iot.telemetry.v1.ImportService/ListBatchFiles",
    "GET /v1/chat/escalations": "/iot.chat.v1.ChatService/ListEscalations",
    "GET /v1/chat/escalations:watch": "/iot.chat.v1.ChatService/WatchQueue",
    "GET /v1/chat/help": "/iot.chat.v1.ChatService/ListHelpArticles",
    "GET /v1/chat/help/{slug}": "/iot.chat.v1.ChatService/GetHelpArticle",
    "POST /v1/chat/sessions": "/iot.chat.v1.ChatService/CreateSession",
    "GET /v1/chat/sessions": "/iot.chat.v1.ChatService/ListSessions",
    "GET /v1/chat/sessions/{session_id}": "/iot.chat.v1.ChatService/GetSession",
    "POST /v1/chat/sessions/{session_id}/agent-messages": (
        "/iot.chat.v1.ChatService/SendAgentMessage"
    ),
    "POST /v1/chat/sessions/{session_id}/end": "/iot.chat.v1.ChatService/EndSession",
    "GET /v1/chat/sessions/{session_id}/events": "/iot.chat.v1.ChatService/WatchSession",
    "POST /v1/chat/sessions/{session_id}/messages": "/iot.chat.v1.ChatService/SendMessage",
    "POST /v1/chat/sessions/{session_id}/resolve": "/iot.chat.v1.ChatService/ResolveEscalation",
    "POST /v1/correlations": "/iot.analytics.v1.AnalyticsService/CreateCorrelation",
    "GET /v1/correlations": "/iot.analytics.v1.AnalyticsService/ListCorrelations",
    "GET /v1/correlations/export": "/iot.analytics.v1.AnalyticsService/ExportCorrelations",
    "GET /v1/correlations/{correlation_id}": "/iot.analytics.v1.AnalyticsService/GetCorrelation",
    "POST /v1/alert-rules": "/iot.analytics.v1.AlertService/CreateAlertRule",
    "GET /v1/alert-rules": "/iot.analytics.v1.AlertService/ListAlertRules",
    "GET /v1/alert-rules/{rule_id}": "/iot.analytics.v1.AlertService/GetAlertRule",
    "PATCH /v1/alert-rules/{rule_id}": "/iot.analytics.v1.AlertService/UpdateAlertRule",
    "DELETE /v1/alert-rules/{rule_id}": "/iot.analytics.v1.AlertService/DeleteAlertRule",
    "POST /v1/alert-rules/{rule_id}:rotateSecret": (
        "/iot.analytics.v1.AlertService/RotateWebhookSecret"
    ),
    "POST /v1/alert-rules/{rule_id}:acknowledge": "/iot.analytics.v1.AlertService/AcknowledgeAlert",
    "GET /v1/alert-rules/{rule_id}/deliveries": "/iot.analytics.v1.AlertService/ListDeliveries",
    "GET /v1/alerts:watch": "/iot.analytics.v1.AlertService/WatchAlerts",
    "GET /v1/devices": "/iot.devices.v1.DeviceService/ListDevices",
    "POST /v1/devices": "/iot.devices.v1.DeviceService/RegisterDevice",
    "DELETE /v1/devices/{device_id}": "/iot.devices.v1.DeviceService/DecommissionDevice",
    "GET /v1/devices/{device_id}": "/iot.devices.v1.DeviceService/GetDevice",
    "PATCH /v1/devices/{device_id}": "/iot.devices.v1.DeviceService/UpdateDevice",
    "POST /v1/devices/{device_id}/credentials": (
        "/iot.devices.v1.DeviceService/IssueDeviceCredential"
    ),
    "DELETE /v1/devices/{device_id}/credentials": (
        "/iot.devices.v1.DeviceService/RevokeDeviceCredential"
    ),
    "POST /v1/devices/{device_id}/readings": "/iot.telemetry.v1.TelemetryService/UploadReadings",
    "POST /v1/devices/{device_id}/streams": "/iot.telemetry.v1.TelemetryService/CreateStream",
    "GET /v1/devices/{device_id}/streams": "/iot.telemetry.v1.TelemetryService/ListStreams",
    "POST /v1/devices:import": "/iot.devices.v1.DeviceService/ImportDevices",
    "GET /v1/downloads/{export_id}/{file_name}": "/iot.auth.v1.DataService/DownloadExport",
    "GET /v1/profile": "/iot.auth.v1.ProfileService/GetProfile",
    "PATCH /v1/profile": "/iot.auth.v1.ProfileService/UpdateProfile",
    "POST /v1/resilience/offline-data": "/iot.auth.v1.DataService/RequestOfflineData",
    "POST /v1/security/download-data": "/iot.auth.v1.DataService/RequestDataDownload",
    "GET /v1/security/logs": "/iot.auth.v1.SecurityService/ListSecurityLogs",
    "GET /v1/security/sessions": "/iot.auth.v1.SecurityService/ListSessions",
    "DELETE /v1/security/sessions": "/iot.auth.v1.SecurityService/RevokeOtherSessions",
    "DELETE /v1/security/sessions/{session_id}": "/iot.auth.v1.SecurityService/RevokeSession",
    "POST /v1/sites/token": "/iot.auth.v1.SiteTokenService/IssueSiteToken",
    "GET /v1/streams/{stream_id}": "/iot.telemetry.v1.TelemetryService/GetStream",
    "PATCH /v1/streams/{stream_id}": "/iot.telemetry.v1.TelemetryService/UpdateStream",
    "GET /v1/streams/{stream_id}/data": "/iot.telemetry.v1.TelemetryService/GetStreamData",
    "GET /v1/streams/{stream_id}/detector": "/iot.analytics.v1.AnalyticsService/GetDetector",
    "PATCH /v1/streams/{stream_id}/detector": "/iot.analytics.v1.AnalyticsService/UpdateDetector",
    "GET /v1/streams/{stream_id}/readings:watch": (
        "/iot.telemetry.v1.TelemetryService/WatchStreamReadings"
    ),
    "GET /v1/streams/{stream_id}/scores": "/iot.analytics.v1.AnalyticsService/GetScores",
    "GET /v1/system/status": "/iot.system.v1.SystemService/GetSystemStatus",
    "POST /v1/uploads": "/iot.telemetry.v1.ImportService/CreateUpload",
    "GET /v1/uploads/{file_id}": "/iot.telemetry.v1.ImportService/GetUpload",
    "PUT /v1/uploads/{file_id}/content": "/iot.telemetry.v1.ImportService/UploadContent",
    "GET /v1/uploads/{file_id}/errors": "/iot.telemetry.v1.ImportService/ListUploadErrors",
}
"""Every REST route that reaches an RPC; its row in :data:`RPCS` says who may call."""

_CONSOLE = "the web console's page and assets: static files, no data"

GATEWAY_ROUTES: dict[str, str] = {
    "GET /healthz": "the gateway's liveness probe; says only that it serves HTTP",
    "GET /openapi.json": "the API description, built from the protos; no data",
    "GET /": _CONSOLE,
    "GET /docs": "the API documentation page over /openapi.json; no data",
    "GET /favicon.ico": _CONSOLE,
    "GET /static/*": _CONSOLE,
}
"""The gateway's own routes, all public, and why (``/static/*`` covers every asset)."""
