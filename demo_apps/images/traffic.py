"""Photographers and viewers: uploads (a few corrupt, a few malformed), metadata lookups, and
thumbnail views through the CDN (hits, and misses for new or expired thumbnails)."""

from __future__ import annotations

import base64
import io
import random
import threading
import time

import httpx
from PIL import Image

from demo_apps.cloud.local_cloud import LocalCloud
from demo_apps.cloud.sam.sam_deploy import Stack


def picture(rng: random.Random) -> bytes:
    width, height = rng.choice([(480, 360), (640, 480), (800, 600)])
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x, y = rng.randrange(width - 40), rng.randrange(height - 40)
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 40, y + 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class ImagesTraffic:
    name = "images"

    def __init__(self, cloud: LocalCloud, stack: Stack) -> None:
        self.cloud = cloud
        self.url = stack.api_url("ImagesApi")
        self.cdn = stack.cdn_url("ThumbnailsCdn")
        self._uploaded: list[tuple[float, str]] = []  # (when, name)
        self._lock = threading.Lock()
        self._count = 0

    def act(self, client: httpx.Client, rng: random.Random) -> int:
        roll = rng.random()
        with self._lock:  # viewers find images a few seconds after their upload, once resized
            known = [name for when, name in self._uploaded[-40:] if time.monotonic() - when > 4.0]
        if roll < 0.3 or not known:
            return self._upload(client, rng)
        # Viewers favour the newest photos (half the views go to the latest two), so the CDN
        # serves the same thumbnails again: hits beside the misses of new ones.
        name = known[-1 - min(int(rng.expovariate(0.5)), len(known) - 1)]
        if roll < 0.45:
            return client.get(f"{self.url}/images/{name}").status_code
        size = rng.choices(["small", "medium", "large"], weights=[1, 3, 1])[0]
        return client.get(f"{self.cdn}/{size}/{name}.jpg").status_code

    def _upload(self, client: httpx.Client, rng: random.Random) -> int:
        with self._lock:
            self._count += 1
            count = self._count
            name = f"photo-{count:05d}.png"
        data = picture(rng)
        if count % 12 == 3:  # one upload in twelve
            data = b"\x89PNG broken" + data[20:60]  # a corrupt upload: resize fails, retried, DLQ
        elif count % 25 == 7:
            return client.put(f"{self.url}/images/{name}", json={"data": "%%%"}).status_code  # invalid: 400
        status = client.put(f"{self.url}/images/{name}", json={"data": base64.b64encode(data).decode()}).status_code
        if status == 202:
            with self._lock:
                self._uploaded.append((time.monotonic(), name))
        return status

    def midway(self) -> None:
        """Nothing changes mid-run here: the banking architecture shifts its alias."""
