"""GET /metrics/spans on a real daemon: Prometheus text a Prometheus parser reads, with the
services' own requests, latency and edges once their spans have settled."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon import Daemon
from tests.integration.test_cost_api import invoke
from tests.waiting import wait_until


def test_the_services_requests_latency_and_edges(daemon: Daemon) -> None:
    invoke(daemon)

    def settled() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = daemon.get("/metrics/spans")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        found = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }
        return found if any(name == "fluoro_edge_requests_total" for name, _ in found) else {}

    found = wait_until(settled, timeout_s=20, poll_s=0.5)  # spans count once they are 5 s old
    quote = frozenset({("service", "quote"), ("type", "AWS::Lambda::Function"), ("operation", "quote")})
    assert found[("fluoro_span_requests_total", quote)] == 1
    assert found[("fluoro_span_duration_seconds_count", quote)] == 1
    edge = frozenset(
        {("caller", "api/prod"), ("caller_type", "AWS::ApiGateway::Stage"), ("callee", "quote"),
         ("callee_type", "AWS::Lambda::Function")}
    )  # fmt: skip
    assert found[("fluoro_edge_requests_total", edge)] == 1
