"""Helpers for tests of the web-facing processes: the dashboard, health endpoints, a headless
Chromium (Debian's ``chromium`` and ``chromium-driver``: ``make system-deps``) and a real Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from anomstream.dashboard import dashboard_command
from stream.settings import Settings, in_ci
from tests.support.data import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "out" / "test-artifacts"


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """The HTTP status of a GET (None when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local test URLs
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local test URLs
        return json.loads(response.read())


def spawn_dashboard(settings: Settings, port: int, log_path: Path, *args: str) -> subprocess.Popen:
    """A real ``anomstream dashboard`` process with these settings."""
    command = dashboard_command("--port", str(port), *args)
    log = log_path.open("ab")
    return subprocess.Popen(command, env=settings.environment(), stdout=log, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def require_binary(path: str, package: str) -> str:
    """The binary, or fail in CI / skip elsewhere, saying which Debian package brings it."""
    found = path if Path(path).exists() else shutil.which(Path(path).name)
    if found is None:
        message = f"{path} not found: install Debian's {package} (make system-deps)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def headless_chromium(width: int = 1500, height: int = 1150) -> Any:
    """A Selenium WebDriver on Debian's headless Chromium: no network, nothing downloaded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_binary(CHROMIUM, "chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(arg)
    service = Service(executable_path=require_binary(CHROMEDRIVER, "chromium-driver"))
    return webdriver.Chrome(service=service, options=options)
