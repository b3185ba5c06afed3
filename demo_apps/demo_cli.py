"""``fluoro-demo``: the three architectures under load, with a live view of what is happening.

Without ``--collector`` it starts ``fluoro serve`` itself (its DuckDB file under ``.fluoro/``,
the UI on ``--ui-port``), deploys the chosen architectures into the local cloud, drives them
and shows requests, errors, throttles and cold starts per architecture until ``--duration``
or Ctrl-C; then it stops everything in order (load, cloud, collector).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from demo_apps.architectures import ARCHITECTURES, Demo, DemoSettings, Snapshot
from demo_apps.cost_summary import cost_table
from demo_apps.local_collector import free_port, run_collector

DATA_DIR = Path(".fluoro")


def _port_or_free(port: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return free_port(kind)
    return port


@contextlib.contextmanager
def collector_for(url: str | None, ui_port: int) -> Iterator[tuple[str, str | None, str | None]]:
    """(OTLP traces URL, X-Ray daemon address, UI URL): a given collector, or one started here."""
    if url:
        yield url.rstrip("/") + "/v1/traces", "127.0.0.1:2000", None
        return
    DATA_DIR.mkdir(exist_ok=True)
    database = DATA_DIR / "demo.duckdb"
    for stale in (database, database.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)  # each demo starts with an empty map
    ports = (_port_or_free(4318), _port_or_free(ui_port), _port_or_free(2000, socket.SOCK_DGRAM))
    with run_collector(database, ports=ports) as collector:
        yield collector.traces_url, collector.xray_address, collector.api_url


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as cleanly as Ctrl-C


def table(rows: list[Snapshot], elapsed_s: float, ui_url: str | None) -> Table:
    view = Table(title=f"Fluoro demo — {elapsed_s:,.0f} s" + (f" — open {ui_url}" if ui_url else ""))
    columns = ("architecture", "phase", "requests", "ok", "4xx", "5xx", "429 API", "Lambda throttled", "cold starts")
    for column in columns:
        view.add_column(column, justify="left" if column in ("architecture", "phase") else "right")
    for row in rows:
        counts = (row.requests, row.ok, row.client_errors, row.faults, row.throttles, row.lambda_throttles)
        view.add_row(row.name, row.phase, *(f"{n:,}" for n in (*counts, row.cold_starts)))
    return view


@click.command()
@click.argument("which", type=click.Choice([*ARCHITECTURES, "all"]), default="all")
@click.option("--duration", "duration_s", type=float, default=0.0, help="Seconds to run; 0 runs until Ctrl-C.")
@click.option(
    "--rps", type=float, default=2.0, show_default=True, help="Requests a second per architecture (steady phases)."
)
@click.option(
    "--fault-rate", type=float, default=0.03, show_default=True, help="Share of withdrawals that fault downstream."
)
@click.option(
    "--collector", "collector_url", default=None, help="A running collector's OTLP base URL (else one is started)."
)
@click.option("--ui-port", type=int, default=8680, show_default=True, help="Where the started collector serves the UI.")
def main(which: str, duration_s: float, rps: float, fault_rate: float, collector_url: str | None, ui_port: int) -> None:
    """Run the demo architectures under load, traced into Fluoro."""
    names = list(ARCHITECTURES) if which == "all" else [which]
    console = Console()
    signal.signal(signal.SIGTERM, _interrupt)
    with collector_for(collector_url, ui_port) as (otlp, xray, ui_url):
        if ui_url:
            console.print(f"Fluoro is running: open [bold]{ui_url}[/bold] (the service map)")
        console.print(f"deploying {', '.join(names)} into the local cloud…")
        settings = DemoSettings(
            otlp, xray, rps=rps, duration_s=duration_s or 10**9, fault_rate=fault_rate, collector_api=ui_url
        )
        demo = Demo(names, settings).start()
        started = time.monotonic()
        try:
            with Live(table(demo.snapshot(), 0, ui_url), console=console, refresh_per_second=2) as live:
                while demo.running:
                    time.sleep(0.5)
                    live.update(table(demo.snapshot(), time.monotonic() - started, ui_url))
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            rows = demo.snapshot()
            demo.stop()
        if ui_url:
            console.print()  # the live table's last frame ends without one
            console.print(cost_table(ui_url, rows, time.time() - (time.monotonic() - started)))
    console.print("stopped")


if __name__ == "__main__":
    main()
