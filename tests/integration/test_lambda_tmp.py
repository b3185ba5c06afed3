"""Each environment's /tmp is its own and holds its function's EphemeralStorage, no more.

On a machine that allows mount namespaces and loop devices (this one, and CI's), every
environment mounts an ext4 image of its size on /tmp; the fallback (a TMPDIR measured after each
invocation) is tested by turning the private /tmp off, as a machine that refuses it would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo_apps.cloud.lambdas.lambda_errors import FunctionError
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.cloud.lambdas.mount_namespace import probe
from demo_apps.otlp_sink import OtlpSink
from tests.integration.lambda_functions import config
from tests.waiting import wait_until

REFUSAL = probe()


@pytest.fixture
def private(sink: OtlpSink) -> Iterator[LambdaService]:
    if REFUSAL is not None:
        pytest.skip(f"this machine gives no environment its own /tmp: {REFUSAL}")
    service = LambdaService(LambdaSettings(account_limit=10, otlp_endpoint=sink.endpoint))
    yield service
    service.close()


def test_code_writing_to_a_literal_tmp_sees_only_its_own_environment(private: LambdaService) -> None:
    private.deploy(config("first", "tmp_files", ephemeral_storage_mb=1024))
    private.deploy(config("second", "tmp_files"))
    first = private.invoke("first", {"name": "first.txt"})
    second = private.invoke("second", {"name": "second.txt"})
    assert "first.txt" in first["files"] and "second.txt" not in first["files"]
    assert "second.txt" in second["files"] and "first.txt" not in second["files"]
    assert not Path("/tmp/first.txt").exists() and not Path("/tmp/second.txt").exists()  # not the host's
    assert 1024 <= first["size_mb"] < 1024 * 1.05 and 512 <= second["size_mb"] < 512 * 1.05
    assert first["opt"] == []  # no layers: an empty /opt, as on AWS, not the host's
    again = private.invoke("first", {"name": "again.txt"})
    assert {"first.txt", "again.txt"} <= set(again["files"])  # a warm environment keeps its /tmp


def test_a_write_past_ephemeral_storage_fails_inside_the_handler(private: LambdaService, sink: OtlpSink) -> None:
    private.deploy(config("disk", "fill_tmp", ephemeral_storage_mb=512, memory_mb=1769, timeout_s=60))
    assert private.invoke("disk", {"mb": 500}) == {"wrote_mb": 500}  # the whole size is there to use
    with pytest.raises(FunctionError) as caught:
        private.invoke("disk", {"mb": 20})
    assert caught.value.payload["errorType"] == "OSError"
    assert "No space left on device" in caught.value.payload["errorMessage"]

    def failed_handler_span() -> list[object]:
        return [
            s
            for s in sink.wait_for(0, 0)
            if s.name == "disk" and s.attributes.get("fluoro.origin") == "AWS::Lambda::Function" and s.status_code == 2
        ]

    assert wait_until(failed_handler_span, timeout_s=10)  # the fault is the function's own span's


def test_without_a_private_tmp_the_size_is_measured_after_the_invocation(
    sink: OtlpSink, caplog: pytest.LogCaptureFixture
) -> None:
    service = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint, private_tmp=False))
    try:
        with caplog.at_level(logging.WARNING):
            service.deploy(config("disk", "fill_tmp", ephemeral_storage_mb=512, memory_mb=1769, timeout_s=60))
            service.deploy(config("other", "echo"))
        warnings = [r.getMessage() for r in caplog.records if "share the host's /tmp" in r.getMessage()]
        assert len(warnings) == 1 and "turned off in the settings" in warnings[0]
        assert service.invoke("disk", {"mb": 1}) == {"wrote_mb": 1}
        with pytest.raises(FunctionError) as caught:
            service.invoke("disk", {"mb": 520})
        assert caught.value.payload["errorType"] == "Runtime.EphemeralStorageExceeded"
        assert service.invoke("disk", {"mb": 1}) == {"wrote_mb": 1}  # a fresh environment, an empty /tmp
    finally:
        service.close()
