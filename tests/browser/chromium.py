"""Debian's Chromium, driven by Playwright (pip `playwright`, its Chromium download unused).

Only `/usr/bin/chromium` from the `chromium` package is used: Playwright's own browser
download cannot run on the machines this project is built on. Each browser context is a fresh
profile (cookies, storage), like a user's first visit.
"""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

# Flags for a headless Chromium in a container: no sandbox (we run as root), no GPU, and no
# background traffic to Google services (the machine reaches nothing but loopback).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None. In CI they always run (.ci/run installs
    Chromium), so a missing browser fails there instead of skipping."""
    if CHROMIUM.exists() or in_ci():
        return None
    return f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) to run the browser tests"
