"""The web UI of ``logarchive serve`` driven by a real headless Chromium (Debian's ``chromium``
with Playwright): log in, filter and sort runs, open a run, read its log and chart, search within
it, download it, search the archive, and a phone-sized screen. One server and one browser for the
module. Screenshots go to a temporary folder, or to docs/screenshots/ with
``LOGARCHIVE_UPDATE_SCREENSHOTS=1``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from logarchive_testsupport.archives import write_config
from playwright import sync_api as playwright  # the test extra; the browser is Debian's

from logarchive.serve.testing import serving

CHROMIUM = "/usr/bin/chromium"
TOKEN = "ui-test-token-4d2c8a7b1e9f"
EXE = str(Path(sys.executable).parent / "logarchive")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"

if not Path(CHROMIUM).exists() and os.geteuid() != 0:
    pytest.skip(f"{CHROMIUM} is missing and this is not root, so scripts/dev-install.sh could not "
                "install it: apt-get install chromium", allow_module_level=True)


def training_log(run: str, lines: int) -> bytes:
    levels = ["INFO", "INFO", "DEBUG", "INFO", "WARN", "INFO", "INFO", "ERROR"]
    return "".join(f"2026-03-13T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z [{levels[i % 8]}] "
                   f"{run}: epoch {i // 10} step {i} loss {1 / (i + 1):.4f}\n"
                   for i in range(lines)).encode()


LOGS = {"mdl-7f3a/run-20260313-a4b9c2.log": training_log("run-20260313-a4b9c2", 240),
        "mdl-7f3a/run-20260314-77e1f0.log": training_log("run-20260314-77e1f0", 60),
        "mdl-91bc/run-20260315-0c3d11.log": training_log("run-20260315-0c3d11", 30),
        "mdl-91bc/run-20260316-5e6f70.log": training_log("run-20260316-5e6f70", 12),
        "mdl-c2d4/run-20260317-9a8b7c.log": training_log("run-20260317-9a8b7c", 8)}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("LOGARCHIVE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("ui")
    for name, data in LOGS.items():
        (root / "logs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "logs" / name).write_bytes(data)
    for day, name in enumerate(sorted(LOGS)):  # completion times in the order of the names
        os.utime(root / "logs" / name, (1_773_300_000 + day * 86400,) * 2)
    config = write_config(root / "c.toml", {
        "logarchive": {"state_dir": str(root / "state")},
        "serve": {"sink": "archive", "listen": "127.0.0.1:0", "tokens": [TOKEN]},
        "sources": {"training": {"type": "files", "url": str(root / "logs"),
                                 "fields": r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"}},
        "sinks": {"archive": {"type": "fs", "url": str(root / "archive"),
                              "path": "{model_id}/{run_id}.{ext}"}},
    })
    done = subprocess.run([EXE, "-q", "export", "-c", str(config)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with serving(config, {}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Any:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), \
        f"{CHROMIUM} is missing: run scripts/dev-install.sh (as root it installs chromium)"
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Any, server: Any, shots: Path) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    tab = context.new_page()
    tab.goto(server.url + "/")
    assert "/login" in tab.url
    tab.fill("#token", "not-the-token-000000")
    tab.click("button[type=submit]")
    assert tab.locator("[role=alert]").inner_text() == "That token is not accepted."
    tab.fill("#token", TOKEN)
    tab.screenshot(path=str(shots / "login.png"))
    tab.click("button[type=submit]")
    tab.wait_for_selector("#runs")
    yield tab
    context.close()


def run_names(page: Any) -> list[str]:
    return [t.split("run_id=")[1].strip()
            for t in page.locator("#runs tbody td:first-child").all_inner_texts()]


def test_runs_list_filters_and_sorts(page: Any, server: Any, shots: Path) -> None:
    assert run_names(page) == ["run-20260317-9a8b7c", "run-20260316-5e6f70",
                               "run-20260315-0c3d11", "run-20260314-77e1f0",
                               "run-20260313-a4b9c2"]  # newest completed first
    page.screenshot(path=str(shots / "runs.png"), full_page=True)
    page.select_option("#field-name", "model_id")
    page.fill("#field-value", "mdl-91bc")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**value=mdl-91bc**")
    assert run_names(page) == ["run-20260316-5e6f70", "run-20260315-0c3d11"]
    page.click("th a[data-sort=lines]")  # lines, descending
    page.click("th a[data-sort=lines]")  # then ascending
    page.wait_for_url("**order=asc**")
    assert run_names(page) == ["run-20260316-5e6f70", "run-20260315-0c3d11"]
    assert page.locator("#runs tbody tr td.num").first.inner_text() == "12"


def test_run_page_log_chart_search_and_download(page: Any, server: Any, shots: Path) -> None:
    page.goto(server.url + "/?field=run_id&value=run-20260313-a4b9c2")
    page.click("#runs tbody a")
    page.wait_for_selector("#log tbody tr")
    page.wait_for_selector("#chart svg rect")
    rows = page.locator("#log tbody tr")
    assert rows.count() == 240
    assert rows.nth(7).get_attribute("class") == "lvl-error"
    assert page.locator("#log tbody tr:first-child td.seq").inner_text() == "1"
    levels = {r.get_attribute("data-level") for r in page.locator("#chart rect").all()}
    assert levels == {"info", "debug", "warning", "error"}
    page.click("#verify")
    page.wait_for_selector("#verified .ok")
    assert "sha256 verified" in page.locator("#verified").inner_text()
    page.screenshot(path=str(shots / "run.png"), full_page=False)
    page.fill("#log-q", r"step 1\d\b")
    page.select_option("#log-level", "error")
    page.click("#logsearch button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#log tbody tr').length === 1")
    assert page.locator("#log tbody tr td.seq").inner_text() == "16"  # step 15 is an ERROR
    assert page.locator("#log mark").inner_text() == "step 15"
    with page.expect_download() as info:
        page.click("#download-txt")
    download = info.value
    assert download.suggested_filename == "mdl-7f3a-run-20260313-a4b9c2.txt"
    assert Path(download.path()).read_bytes() == LOGS["mdl-7f3a/run-20260313-a4b9c2.log"]
    with page.expect_download() as info:
        page.click("#download-ndjson")
    assert Path(info.value.path()).read_bytes().count(b"\n") == 240


def test_search_page_finds_lines_across_runs(page: Any, server: Any, shots: Path) -> None:
    page.goto(server.url + "/search")
    page.fill("#pattern", "epoch 2 step 2[3-5]")
    page.select_option("select[name=level]", "warning")
    page.click("#search button[type=submit]")
    page.wait_for_selector("#hits")
    hits = page.locator("#hits tbody tr")
    assert hits.count() == 3  # step 23 (an ERROR) of the three runs with more than 23 lines
    assert set(page.locator("#hits td.seq").all_inner_texts()) == {"24"}
    page.screenshot(path=str(shots / "search.png"), full_page=True)
    hits.first.locator("a").click()
    page.wait_for_selector("#log tbody tr")


def test_a_phone_sized_screen_needs_no_sideways_scrolling(browser: Any, server: Any,
                                                           page: Any, shots: Path) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                device_scale_factor=2,
                                storage_state=page.context.storage_state())
    tab = phone.new_page()
    for path in ("/", "/search?pattern=ERROR"):
        tab.goto(server.url + path)
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    tab.goto(server.url + "/")
    tab.screenshot(path=str(shots / "phone-runs.png"))
    tab.click("#runs tbody a")
    tab.wait_for_selector("#log tbody tr")
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    tab.screenshot(path=str(shots / "phone-run.png"))
    phone.close()
