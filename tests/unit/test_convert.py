"""The kit's conversions between datetimes, epoch microseconds and protobuf Timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from iot.devices.v1 import devices_pb2
from iotkit.convert import (
    EPOCH,
    TIMESTAMP_RANGE,
    datetime_field,
    epoch_micros,
    micros,
    micros_datetime,
    micros_timestamp,
    timestamp,
)
from iotkit.errors import FieldViolation, ValidationFailed

# Timestamp's valid range is years 1 to 9999; datetime's too.
MICROS = st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999)
AWARE = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@given(MICROS)
def test_microseconds_round_trip_through_a_timestamp(value: int) -> None:
    assert micros(micros_timestamp(value)) == value
    assert micros_timestamp(value).ToMicroseconds() == value


@given(MICROS)
def test_microseconds_round_trip_through_a_datetime(value: int) -> None:
    moment = micros_datetime(value)
    assert moment.tzinfo is UTC
    assert epoch_micros(moment) == value


@given(AWARE)
def test_a_datetime_round_trips_through_a_timestamp(moment: datetime) -> None:
    stamp = timestamp(moment)
    assert stamp is not None
    assert stamp.ToDatetime(tzinfo=UTC) == moment
    assert micros_datetime(micros(stamp)) == moment


@given(AWARE | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_a_timestamp_is_what_from_datetime_sets(moment: datetime) -> None:
    """Aware or naive (local, as astimezone takes it), as the library's own conversion."""
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment.astimezone(UTC))
    assert timestamp(moment) == expected


def test_epoch_micros_is_exact_where_a_float_is_not() -> None:
    # Through a float this one comes out as ...258016.
    moment = datetime(7168, 11, 29, 22, 55, 4, 258037, tzinfo=UTC)
    assert epoch_micros(moment) == 164_061_845_704_258_037
    assert epoch_micros(EPOCH) == 0


def test_micros_drops_nanoseconds_below_a_microsecond() -> None:
    assert micros(timestamp_pb2.Timestamp(seconds=1, nanos=1_999)) == 1_000_001
    assert micros(timestamp_pb2.Timestamp(seconds=-1, nanos=500)) == -1_000_000


def test_datetime_field_is_none_when_unset() -> None:
    unset = devices_pb2.RecordDeviceActivityRequest(device_id="d")
    assert datetime_field(unset, "last_seen_at") is None
    set_ = devices_pb2.RecordDeviceActivityRequest(
        last_seen_at=timestamp_pb2.Timestamp(seconds=1_767_323_045, nanos=7_000)
    )
    assert datetime_field(set_, "last_seen_at") == datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    assert timestamp(None) is None


@given(
    seconds=st.one_of(
        st.integers(-(2**63), -62_135_596_801), st.integers(253_402_300_800, 2**63 - 1)
    ),
)
def test_a_timestamp_outside_years_1_to_9999_is_a_violation_of_its_field(seconds: int) -> None:
    request = devices_pb2.RecordDeviceActivityRequest(
        last_seen_at=timestamp_pb2.Timestamp(seconds=seconds)
    )
    with pytest.raises(ValidationFailed) as caught:
        datetime_field(request, "last_seen_at")
    assert caught.value.violations == [FieldViolation("last_seen_at", TIMESTAMP_RANGE)]


@pytest.mark.parametrize("nanos", [-1, 1_000_000_000, -(2**31)])
def test_nanos_outside_a_second_are_a_violation_of_the_field(nanos: int) -> None:
    request = devices_pb2.RecordDeviceActivityRequest(
        last_seen_at=timestamp_pb2.Timestamp(seconds=0, nanos=nanos)
    )
    with pytest.raises(ValidationFailed) as caught:
        datetime_field(request, "last_seen_at")
    assert caught.value.violations == [FieldViolation("last_seen_at", TIMESTAMP_RANGE)]
