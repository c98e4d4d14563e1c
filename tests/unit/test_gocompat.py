"""Go's text forms (transit.gocompat)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from transit.gocompat import (
    atoi,
    format_time,
    format_time_ns,
    format_time_s,
    is_digits,
    isoformat_z,
    multierror,
    parse_time,
    time_string,
)


def test_is_digits() -> None:
    assert is_digits("0") and is_digits("0123456789")
    for bad in ("", " 1", "+1", "1.0", "\u00b2", "\u0661", "1\u00b2"):  # "²" and "١" too
        assert not is_digits(bad), bad


def test_atoi() -> None:
    assert atoi("01") == 1 and atoi("+3") == 3 and atoi("-2") == -2
    assert atoi("+7") == 7 and atoi("-3") == -3
    for bad in ("", "+", " 1", "1_0", "١", "1.0", "0x1"):
        with pytest.raises(ValueError) as info:
            atoi(bad)
        assert str(info.value) == f'strconv.Atoi: parsing "{bad}": invalid syntax'
    with pytest.raises(ValueError, match="value out of range"):
        atoi("99999999999999999999")
    assert atoi(str(2**63 - 1)) == 2**63 - 1 and atoi(str(-(2**63))) == -(2**63)


def test_time_roundtrip() -> None:
    t = parse_time("2024-01-01T00:00:00.123456789Z")
    assert format_time(t) == "2024-01-01T00:00:00.123456Z"
    assert format_time(parse_time("2024-01-01T01:00:00+01:00")) == "2024-01-01T00:00:00Z"


def test_format_time_ns_trims_like_go() -> None:
    assert format_time_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert format_time_ns(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert format_time_ns(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert format_time_ns().endswith("Z")


def test_other_time_forms() -> None:
    assert format_time_s(1_700_000_000) == "2023-11-14T22:13:20Z"
    assert time_string(1_700_000_000) == "2023-11-14 22:13:20 +0000 UTC"
    dt = datetime(2023, 11, 14, 22, 13, 20, 120000, tzinfo=UTC)
    assert isoformat_z(dt) == "2023-11-14T22:13:20.120000Z"  # (not Go's trimmed form)


def test_multierror() -> None:
    assert multierror(["a"]) == "1 error occurred:\n\t* a\n\n"
    assert multierror(["a", "b"]) == "2 errors occurred:\n\t* a\n\t* b\n\n"
