"""ATM customers: withdrawals (some over the balance, a few malformed), balance checks that
the stage cache answers, statements from the legacy core, health checks."""

from __future__ import annotations

import random
import threading
from decimal import Decimal
from typing import Any

import httpx

from demo_apps.cloud.local_cloud import LocalCloud
from demo_apps.cloud.sam.sam_deploy import Stack

ACCOUNTS = 60


class BankingTraffic:
    name = "banking"

    def __init__(self, cloud: LocalCloud, stack: Stack) -> None:
        self.cloud, self.stack = cloud, stack
        self.url = stack.api_url("BankApi")
        table = cloud.client("dynamodb")
        for number in range(ACCOUNTS):
            item: dict[str, Any] = {
                "account_id": {"S": f"acc-{number:03d}"},
                "balance": {"N": str(Decimal(40 + 25 * (number % 9)))},
            }
            if number % 10 == 0:
                item["vip"] = {"BOOL": True}  # a VIP account cannot be frozen: the workflow escalates
            table.put_item(TableName="bank-accounts", Item=item)

    def act(self, client: httpx.Client, rng: random.Random) -> int:
        account = f"acc-{rng.randrange(ACCOUNTS):03d}"
        roll = rng.random()
        if roll < 0.55:
            body: dict[str, Any] = {"account": account, "amount": rng.choice([20, 40, 60, 100, 500])}
            if roll < 0.04:
                body = {"account": account, "amount": "lots"}  # an invalid request: 400
            return client.post(f"{self.url}/withdraw", json=body).status_code
        if roll < 0.85:
            return client.get(f"{self.url}/accounts/{account}/balance").status_code
        if roll < 0.95:
            return client.get(f"{self.url}/statements/{account}").status_code
        return client.get(f"{self.url}/health").status_code

    def midway(self) -> None:
        """Publish a new withdraw version and move the live alias onto it, half then all."""
        lambdas = self.cloud.lambdas
        version = lambdas.publish_version("withdraw")
        current = lambdas.alias("withdraw", "live").version
        lambdas.put_alias("withdraw", "live", current, additional_version=version, weight=0.5)
        timer = threading.Timer(10.0, lambda: lambdas.put_alias("withdraw", "live", version))
        timer.daemon = True
        timer.start()
