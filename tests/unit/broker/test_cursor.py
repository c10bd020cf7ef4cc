import pytest

from broker.delivery.cursor import Cursor, InvalidCursor


def test_cursor_round_trips_and_only_moves_forward():
    cursor = Cursor.parse(None, 3)
    assert str(cursor) == "0.0.0"
    cursor = cursor.advanced(1, 7).advanced(1, 5)
    assert str(cursor) == "0.7.0"
    assert Cursor.parse(str(cursor), 3) == cursor


@pytest.mark.parametrize("text", ["abc", "1.2", "-1", "1..2", "9" * 30, "1.2.3.4"])
def test_malformed_cursor_is_refused(text):
    with pytest.raises(InvalidCursor):
        Cursor.parse(text, 3 if text != "-1" else 1)
