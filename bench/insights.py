"""Does the insight detector find the demo's injected faults, on the right nodes, and nothing else?

Two runs of the banking and social architectures in the local cloud, traced into a `fluoro
serve` of their own whose detector looks every 5 s at the last 30 s against the 3 minutes
before (the same test as the default 1 minute against 15, on a shorter clock):

1. steady: constant traffic, no injected fault (the demo's usual client errors and its poison
   post in fifteen stay, at their usual rate); every insight opened is a false positive;
2. faults: the same, then at WARMUP_S three injections at once for INJECT_S: withdraw's fault
   rate raised to 50% (a new version behind its alias), volleys of concurrent withdrawals past
   its reserved concurrency, and a poison post in two to the social API. An insight is a true
   positive when its kind and root cause are one injection's (fault at withdraw, throttle at
   withdraw's Lambda service or the stage, fault at analyze-posts); one opened before the
   injection is a false positive; others are listed apart (a new version's cold starts are
   real latency, for one).

Prints each run's insights, then true and false positives and each injection's time to detect.
Bounded: fixed durations, loopback only; takes about ten minutes.

With --screenshots DIR, the fault run ends by photographing the UI at 1600x1000 in Chromium (the
README's pictures): the map, the banking group's map focused on withdraw, and the insights.

Usage: python bench/insights.py [--warmup-s 200] [--inject-s 90] [--screenshots docs]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from demo_apps.architectures import Demo, DemoSettings  # noqa: E402
from demo_apps.local_collector import get_json, run_collector  # noqa: E402

STEADY = (("steady", 3600.0, 1.0),)
DETECTOR = ("--insights-every", "5s", "--insights-window", "30s", "--insights-baseline", "3m")
EXPECTED = {
    ("fault", "withdraw", "AWS::Lambda::Function"),
    ("throttle", "withdraw", "AWS::Lambda"),
    ("throttle", "bank-api/prod", "AWS::ApiGateway::Stage"),
    ("fault", "analyze-posts", "AWS::Lambda::Function"),
}
INJECTIONS = {
    "withdraw faults": {("fault", "withdraw")},
    "throttles": {("throttle", "withdraw"), ("throttle", "bank-api/prod")},
    "poison": {("fault", "analyze-posts")},
}


def insights(api_url: str) -> list[dict[str, Any]]:
    start = f"{time.time() - 3600:.0f}"
    found: list[dict[str, Any]] = get_json(f"{api_url}/api/insights?start={start}&limit=1000")["insights"]
    return sorted(found, key=lambda i: i["start_ns"])


def inject(demo: Demo, until: float) -> None:
    """The three injections, until `until` (monotonic)."""
    lambdas = demo.cloud.lambdas
    config = lambdas.config("withdraw")
    environment = {**dict(config.environment), "FAULT_RATE": "0.5"}
    demo.cloud.deploy(dataclasses.replace(config, environment=tuple(environment.items())))
    lambdas.put_alias("withdraw", "live", lambdas.publish_version("withdraw"))
    bank = demo.stacks["banking"].api_url("BankApi")
    social = demo.stacks["social"].api_url("SocialApi")

    def volley(number: int) -> None:
        httpx.post(f"{bank}/withdraw", json={"account": f"acc-{number % 50:03d}", "amount": 5}, timeout=30)

    def poison() -> None:
        httpx.post(f"{social}/posts", json={"author": "old-app", "text": "\x00\x01legacy client"}, timeout=30)

    with ThreadPoolExecutor(12) as pool:
        while time.monotonic() < until:
            list(pool.map(volley, range(12)))
            pool.submit(poison)
            time.sleep(1.0)


def screenshots(api_url: str, folder: Path) -> None:
    """The map, the banking group's map focused on withdraw, and the insights page."""
    from playwright.sync_api import sync_playwright

    from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

    withdraw = hashlib.blake2b(b"AWS::Lambda\x00withdraw", digest_size=8).hexdigest()  # the map's node id
    pages = {
        "screenshot-map.png": "/?range=900",
        "screenshot-group.png": f"/?range=900&group=banking&focus={withdraw}",
        "screenshot-insights.png": "/insights?range=900",
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        for name, path in pages.items():
            page.goto(f"{api_url}{path}")
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('updated')")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(folder / name))
        browser.close()


def run(
    name: str, faults: bool, warmup_s: float, inject_s: float, settle_s: float, photos: Path | None = None
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as folder,
        run_collector(Path(folder) / "i.duckdb", extra_args=DETECTOR) as fluoro,
    ):
        settings = DemoSettings(
            fluoro.traces_url, fluoro.xray_address, rps=3.0, fault_rate=0.0, cycle=STEADY, collector_api=fluoro.api_url
        )
        demo = Demo(["banking", "social"], settings).start()
        try:
            started = time.monotonic()
            time.sleep(warmup_s)
            injected_ns = time.time_ns()
            if faults:
                inject(demo, time.monotonic() + inject_s)
            else:
                time.sleep(inject_s)
            time.sleep(settle_s)
            found = insights(fluoro.api_url)
            if photos is not None:
                screenshots(fluoro.api_url, photos)
            print(f"\n{name}: {time.monotonic() - started:.0f} s, {len(found)} insights")
            for insight in found:
                root = insight["root_cause"]
                when = (insight["start_ns"] - injected_ns) / 1e9
                print(
                    f"  {insight['kind']:<9}{root['name']:<22}{root['type']:<32}"
                    f"{when:+7.1f} s from injection  {insight['failures']}/{insight['requests']}  {insight['state']}"
                )
            return {"insights": found, "injected_ns": injected_ns}
        finally:
            demo.stop()


def score(steady: dict[str, Any], faulty: dict[str, Any]) -> None:
    false_positives = len(steady["insights"])
    injected_ns = faulty["injected_ns"]
    true_positives, unexpected = [], []
    for insight in faulty["insights"]:
        key = (insight["kind"], insight["root_cause"]["name"], insight["root_cause"]["type"])
        if insight["start_ns"] < injected_ns:
            false_positives += 1
        elif key in EXPECTED:
            true_positives.append(insight)
        else:
            unexpected.append(insight)
    print(f"\ntrue positives {len(true_positives)}, false positives {false_positives}, others {len(unexpected)}")
    for injection, wanted in INJECTIONS.items():
        found = [i for i in true_positives if (i["kind"], i["root_cause"]["name"]) in wanted]
        took = f"{(found[0]['start_ns'] - injected_ns) / 1e9:.1f} s" if found else "not detected"
        print(f"  {injection:<16} time to detect {took}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup-s", type=float, default=200.0)
    parser.add_argument("--inject-s", type=float, default=90.0)
    parser.add_argument("--settle-s", type=float, default=20.0)
    parser.add_argument("--screenshots", type=Path, default=None, help="a folder for the README's pictures")
    args = parser.parse_args()
    steady = run("steady run", False, args.warmup_s, args.inject_s, args.settle_s)
    faulty = run("fault run", True, args.warmup_s, args.inject_s, args.settle_s, args.screenshots)
    score(steady, faulty)


if __name__ == "__main__":
    main()
