"""The embedded log's one-router lock, in one process (across processes:
test_split_embedded.py)."""

from __future__ import annotations

import pytest

from broker.roles import RouterAlreadyRunningError, RouterLock


def test_one_router_lock_per_data_directory(tmp_path) -> None:
    first = RouterLock(tmp_path)
    with pytest.raises(RouterAlreadyRunningError, match="use the Kafka backend"):
        RouterLock(tmp_path)
    first.release()
    RouterLock(tmp_path).release()   # free again once released
    first.release()                  # releasing twice does nothing
