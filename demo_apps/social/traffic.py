"""Posters and readers: posts with hashtags and moods (some flagged for moderation, a few
malformed), trend reads, and now and then a post from an old app version whose binary junk
the analyzer cannot handle (a poison record)."""

from __future__ import annotations

import itertools
import random

import httpx

from demo_apps.cloud.local_cloud import LocalCloud
from demo_apps.cloud.sam.sam_deploy import Stack

AUTHORS = [f"user{n:02d}" for n in range(25)]
TAGS = ["python", "serverless", "aws", "opentelemetry", "xray", "duckdb", "cats", "coffee"]
MOODS = ["love this", "great day", "awesome work", "so sad", "terrible service", "this is a scam", "ok", "thanks all"]


class SocialTraffic:
    name = "social"

    def __init__(self, cloud: LocalCloud, stack: Stack) -> None:
        self.cloud = cloud
        self.url = stack.api_url("SocialApi")
        self._posts = itertools.count(1)

    def act(self, client: httpx.Client, rng: random.Random) -> int:
        if rng.random() >= 0.72:
            return client.get(f"{self.url}/trends").status_code
        number = next(self._posts)
        body = {"author": rng.choice(AUTHORS), "text": f"{rng.choice(MOODS)} #{rng.choice(TAGS)} #{rng.choice(TAGS)}"}
        if number % 15 == 4:  # an old app version's post with binary junk: a poison record for the analyzer
            body["text"] = "\x00\x01legacy client #bug"
        elif number % 30 == 11:
            body["text"] = ""  # invalid: 400
        return client.post(f"{self.url}/posts", json=body).status_code

    def midway(self) -> None:
        """Nothing changes mid-run here: the banking architecture shifts its alias."""
