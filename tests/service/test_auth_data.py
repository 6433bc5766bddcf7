"""The user's data on request over real gRPC: exports in every format behind signed,
expiring links that hold no secret; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator
from xml.etree import ElementTree

import grpc
import pytest

from iot.auth.v1 import data_pb2, mfa_pb2
from iotkit.errors import violations_of
from tests.conftest import Backend
from tests.service.auth_support import CHROME, Auth, link_request, start_auth, totp_code
from tests.support import PASSWORD, bearer


@pytest.fixture
async def auth(backend: Backend) -> AsyncIterator[Auth]:
    async with start_auth(backend) as running:
        yield running


async def fetch(auth: Auth, url: str) -> tuple[str, bytes]:
    body = await auth.data.DownloadExport(link_request(url))
    return body.content_type, body.data


async def test_each_format_holds_profile_log_sessions_and_preferences(auth: Auth) -> None:
    email = await auth.register(display_name="Ann")
    login = await auth.login(email, agent=CHROME, ip="203.0.113.7")
    metadata = bearer(login.access_token)
    setup = await auth.mfa.SetupMfa(mfa_pb2.SetupMfaRequest(), metadata=metadata)
    enabled = await auth.mfa.EnableMfa(
        mfa_pb2.EnableMfaRequest(code=totp_code(setup.secret)), metadata=metadata
    )
    secrets = [PASSWORD, "$argon2", setup.secret, *enabled.recovery_codes, login.refresh_token]

    files: dict[str, bytes] = {}
    for fmt in ("json", "csv", "xml"):
        answer = await auth.data.RequestDataDownload(
            data_pb2.RequestDataDownloadRequest(format=fmt), metadata=metadata
        )
        assert answer.format == fmt and answer.HasField("expires_at")
        content_type, files[fmt] = await fetch(auth, answer.download_url)
        assert answer.file_size == len(files[fmt])
        assert (
            content_type.split(";")[0]
            == {
                "json": "application/json",
                "csv": "text/csv",
                "xml": "application/xml",
            }[fmt]
        )
    offline = await auth.data.RequestOfflineData(
        data_pb2.RequestOfflineDataRequest(format="zip"), metadata=metadata
    )
    assert offline.format == "zip"
    assert (
        offline.data_summary.profile_data,
        offline.data_summary.security_logs,
        offline.data_summary.user_preferences,
    ) == (True, True, True)
    _, files["zip"] = await fetch(auth, offline.download_url)
    assert offline.file_size == len(files["zip"])

    exported = json.loads(files["json"])
    assert set(exported) == {
        "exported_at",
        "user",
        "profile",
        "preferences",
        "sessions",
        "security_logs",
    }
    assert exported["user"]["email"] == email and exported["profile"]["display_name"] == "Ann"
    assert exported["preferences"] == {"mfa_enabled": True, "mfa_requested": False}
    assert exported["sessions"][0]["device_info"].startswith("Chrome 120")
    assert {"login_success", "mfa_enabled"} <= {e["action"] for e in exported["security_logs"]}

    rows = list(csv.DictReader(io.StringIO(files["csv"].decode())))
    assert {"section": "user", "item": "", "field": "email", "value": email} in rows
    assert any(r["section"] == "security_logs" and r["value"] == "mfa_enabled" for r in rows)

    root = ElementTree.fromstring(files["xml"])
    assert root.tag == "iotsuite_export" and root.findtext("user/email") == email
    assert root.find("sessions/session/ip_address") is not None
    assert root.findtext("sessions/session/ip_address") == "203.0.113.7"

    with zipfile.ZipFile(io.BytesIO(files["zip"])) as archive:
        names = set(archive.namelist())
        assert names == {
            "manifest.json",
            "user.json",
            "profile.json",
            "preferences.json",
            "sessions.json",
            "security_logs.json",
        }
        unpacked = b"".join(archive.read(name) for name in names)
        assert json.loads(archive.read("profile.json"))["display_name"] == "Ann"

    for content in (*files.values(), unpacked):
        for secret in secrets:
            assert secret.encode() not in content


async def test_offline_json_and_bad_formats(auth: Auth) -> None:
    _, login = await auth.user()
    metadata = bearer(login.access_token)
    offline = await auth.data.RequestOfflineData(
        data_pb2.RequestOfflineDataRequest(), metadata=metadata
    )
    assert offline.format == "json"
    assert json.loads((await fetch(auth, offline.download_url))[1])["user"]
    for call in (
        auth.data.RequestDataDownload(
            data_pb2.RequestDataDownloadRequest(format="pdf"), metadata=metadata
        ),
        auth.data.RequestOfflineData(
            data_pb2.RequestOfflineDataRequest(format="xml"), metadata=metadata
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in violations_of(caught.value)] == ["format"]


async def test_altered_or_expired_links_fail_alike(auth: Auth, backend: Backend) -> None:
    _, login = await auth.user()
    answer = await auth.data.RequestDataDownload(
        data_pb2.RequestDataDownloadRequest(format="json"), metadata=bearer(login.access_token)
    )
    good = link_request(answer.download_url)
    _, other = await auth.user()
    stranger = link_request(
        (
            await auth.data.RequestDataDownload(
                data_pb2.RequestDataDownloadRequest(), metadata=bearer(other.access_token)
            )
        ).download_url
    )
    altered = [
        data_pb2.DownloadExportRequest(
            export_id=good.export_id, file_name=good.file_name, expires=good.expires
        ),
        data_pb2.DownloadExportRequest(
            export_id=good.export_id,
            file_name=good.file_name,
            expires=good.expires + 3600,
            signature=good.signature,
        ),
        data_pb2.DownloadExportRequest(
            export_id=stranger.export_id,
            file_name=good.file_name,
            expires=good.expires,
            signature=good.signature,
        ),
        data_pb2.DownloadExportRequest(
            export_id=good.export_id,
            file_name="other.json",
            expires=good.expires,
            signature=good.signature,
        ),
        data_pb2.DownloadExportRequest(
            export_id=good.export_id,
            file_name=good.file_name,
            expires=good.expires,
            signature=good.signature[:-2] + "AA",
        ),
    ]
    messages = set()
    for request in altered:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await auth.data.DownloadExport(request)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        messages.add(caught.value.details())
    assert (await auth.data.DownloadExport(good)).data
    await backend.sql("auth", "UPDATE data_exports SET expires_at = created_at")
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await auth.data.DownloadExport(good)
    messages.add(expired.value.details())
    assert messages == {"Invalid or expired link"}
