"""How a Kinesis mapping cuts, ages and retries its batches (the rules; the running mapping is
tested against a real stream in tests/integration/test_local_events.py)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest

from demo_apps.cloud.events.kinesis_source import MAX_BACKOFF_S, KinesisMapping, backoff_s, by_partition, split_by_age


def record(n: int, key: str, arrived_s: float = 1_000.0) -> dict[str, object]:
    return {"SequenceNumber": str(n), "PartitionKey": key, "ApproximateArrivalTimestamp": arrived_s}


def test_a_batch_splits_by_partition_key_each_keys_records_in_order() -> None:
    keys = ["a", "b", "c", "d", "e"]
    records = [record(n, keys[n % 5]) for n in range(20)]
    groups = by_partition(records, 3)
    assert 1 <= len(groups) <= 3 and sorted(str(r["SequenceNumber"]) for g in groups for r in g) == sorted(
        str(r["SequenceNumber"]) for r in records
    )
    for group in groups:
        assert len({zlib.crc32(str(r["PartitionKey"]).encode()) % 3 for r in group}) == 1
        numbers = [int(str(r["SequenceNumber"])) for r in group]
        assert numbers == sorted(numbers)  # each key's records in the shard's order
    assert by_partition(records, 1) == [records]


def test_records_past_the_maximum_age_are_set_apart() -> None:
    arrived = datetime.fromtimestamp(1_000, UTC)
    records = [record(1, "a", 900.0), {**record(2, "a"), "ApproximateArrivalTimestamp": arrived}, record(3, "a", 1_050)]
    young, old = split_by_age(records, 60, now_s=1_061.0)
    assert [r["SequenceNumber"] for r in young] == ["3"] and [r["SequenceNumber"] for r in old] == ["1", "2"]
    assert split_by_age(records, -1, now_s=10**9) == (records, [])


def test_retries_back_off_doubling_up_to_a_cap() -> None:
    assert [backoff_s(0.1, n) for n in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert backoff_s(0.1, 10_000) == MAX_BACKOFF_S


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"parallelization_factor": 0}, "ParallelizationFactor 0"),
        ({"parallelization_factor": 11}, "ParallelizationFactor 11"),
        ({"max_record_age_s": 59}, "MaximumRecordAgeInSeconds 59"),
        ({"max_record_age_s": 604_801}, "MaximumRecordAgeInSeconds 604801"),
    ],
)
def test_settings_outside_awss_ranges_are_refused(settings: dict[str, int], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        KinesisMapping("f", "s", **settings).check()  # type: ignore[arg-type]
