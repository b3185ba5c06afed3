"""Debian's Chromium, as the browser tests and bench/ui.py launch it (never a downloaded browser)."""

CHROMIUM = "/usr/bin/chromium"
# As root in a sandbox-less, offline container: no sandbox, no background networking.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
