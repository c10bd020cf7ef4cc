from datetime import UTC, datetime, timedelta, timezone

from broker.clock import epoch_ms


def test_a_time_without_a_zone_is_read_as_utc() -> None:
    assert epoch_ms(datetime(2026, 11, 7, 14, 20)) == epoch_ms(
        datetime(2026, 11, 7, 14, 20, tzinfo=UTC)) == 1_794_061_200_000


def test_every_datetime_converts_even_past_the_platforms_range() -> None:
    assert epoch_ms(datetime(1, 1, 1)) == -62_135_596_800_000
    assert epoch_ms(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))) == (
        -62_135_596_800_000 - 14 * 3_600_000)
    assert epoch_ms(datetime(9999, 12, 31, 23, 59, 59, 999_999)) == 253_402_300_799_999
