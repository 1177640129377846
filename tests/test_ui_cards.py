"""Cards in `aflow ui`, in headless Chromium: a task's cards on its page, drawn by the UI's own
renderer under a strict Content-Security-Policy (scripts and styles only from the UI), a Vega-Lite
chart from the bundled libraries, a dynamic card updating while its task runs, and a card read
from an S3 store. Uses the browser fixtures of test_ui.py; screenshots go where its do."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_ui
from conftest import FLOWS, run_cli
from test_ui import Server, _serve, _shot

# test_ui.py's fixtures, shared: one Chromium per module, a fresh page per test, its screenshots.
browser, page, shots = test_ui.browser, test_ui.page, test_ui.shots

FLOW = FLOWS / "cards_flow.py"
# What a strict UI policy allows: nothing inline, nothing from elsewhere (images may be data:).
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'"
)


@pytest.fixture(scope="module")
def cards_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("ui_cards") / "store"
    id_file = root.parent / "run_id"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFLOW_DATASTORE_ROOT", str(root))
        done = run_cli("run", str(FLOW), "-q", "--run-id-file", str(id_file), timeout=180)
    assert done.returncode == 0, done.stderr
    return root, id_file.read_text()


@pytest.fixture(scope="module")
def cards_server(
    cards_store: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with _serve(cards_store[0], tmp_path_factory.mktemp("ui_cards_log") / "ui.log") as served:
        yield served


def _strict(page: Any) -> list[dict[str, str]]:
    """Serve every UI page under STRICT_CSP and collect what the policy blocks."""

    def add_policy(route: Any) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": STRICT_CSP}
        route.fulfill(response=response, headers=headers)

    page.route(re.compile(r"^http://[^/]+/task/"), add_policy)  # pages, not their /live streams
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
        "{directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile}));"
    )
    return []


def _violations(page: Any) -> list[dict[str, str]]:
    found = page.evaluate("window.__violations")
    # The UI's own pages are another helper's; here only what cards cause counts.
    return [v for v in found if "/cards/" in (v.get("source") or "") or "vega" in json.dumps(v)]


def test_a_tasks_cards_show_on_its_page_under_a_strict_csp(
    page: Any, cards_server: Server, cards_store: tuple[Path, str], shots: Path
) -> None:
    _, run_id = cards_store
    _strict(page)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{cards_server.url}/task/CardsFlow/{run_id}/report/2")
    items = page.locator(".aflow-cards-item")
    items.first.wait_for()
    assert items.count() == 3
    summary = page.locator('.aflow-cards-item[data-card="0.1.default.summary"]')
    summary.locator(".c-dag-step.current").wait_for()
    assert summary.locator(".c-dag-step.current .c-dag-name").inner_text() == "report"
    assert summary.locator(".c-markdown h2").inner_text() == "Summary card"
    assert "3 rows" in summary.locator(".c-section", has_text="Artifacts").inner_text()
    assert summary.locator(".c-image img").get_attribute("src").startswith("data:image/png")
    chart = page.locator('.aflow-cards-item[data-card="0.0.blank.chart"]')
    chart.locator(".c-vega canvas").wait_for()  # vega drew it, from the UI's own copy
    assert chart.locator(".c-error").count() == 2  # the failing components, shown, not fatal
    slow = page.locator('.aflow-cards-item[data-card="0.2.blank.slow"]')
    assert "longer than its timeout" in slow.locator(".c-error").inner_text()
    _shot(page, shots, "cards-task-page")
    assert not errors and not _violations(page)

    # Escaped: the start step's markup arrives as text.
    page.goto(f"{cards_server.url}/task/CardsFlow/{run_id}/start/1")
    card = page.locator(".aflow-card .c-card")
    card.wait_for()
    assert "<script>alert(1)</script>" in card.locator(".c-markdown").inner_text()
    assert card.locator("td", has_text="<b>y</b>").count() == 1
    assert card.locator(".c-valuebox-value").inner_text() == "42"
    assert card.locator(".c-code").inner_text() == "print('<hi>')"
    # Html the author vouches for: in a frame, without scripts, with its own styles (CSSOM).
    orange = page.frame_locator(".c-html").locator("#orange")
    assert orange.inner_text() == "Orange"
    page.wait_for_function(
        "() => { const d = document.querySelector('.c-html').contentDocument;"
        " const p = d && d.getElementById('orange');"
        " return p && getComputedStyle(p).backgroundColor === 'rgb(255, 165, 0)'"
        " && getComputedStyle(p).color === 'rgb(0, 0, 255)'; }"
    )
    assert page.evaluate("document.querySelector('.c-html').contentDocument.title") != "scripts ran"
    assert page.locator(".aflow-card script").count() == 0
    _shot(page, shots, "cards-escaped")


def test_a_card_opens_alone_and_downloads_as_its_own_document(
    page: Any, cards_server: Server, cards_store: tuple[Path, str], shots: Path
) -> None:
    _, run_id = cards_store
    page.goto(f"{cards_server.url}/task/CardsFlow/{run_id}/report/2")
    item = page.locator('.aflow-cards-item[data-card="0.0.blank.chart"]')
    with page.expect_download() as got:
        item.locator("a", has_text="download").click()
    saved = Path(got.value.path()).read_text()
    assert saved.startswith("<!doctype html>") and ".vegaLite={}" in saved  # scripts inlined
    item.locator("a", has_text="open alone").click()
    page.locator(".c-vega canvas").wait_for()  # under the UI's own policy, by its own renderer
    assert page.locator(".aflow-card-back a").inner_text() == f"CardsFlow/{run_id}/report/2"
    _shot(page, shots, "cards-alone")


def test_a_dynamic_card_updates_live_on_the_task_page(
    page: Any, tmp_path: Path, shots: Path
) -> None:
    root = tmp_path / "store"
    gate = tmp_path / "gate"
    id_file = tmp_path / "run_id"
    env = {**os.environ, "AFLOW_DATASTORE_ROOT": str(root), "CARDS_GATE": str(gate)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", str(FLOW), "-q", "--run-id-file", str(id_file),
         "--steps", "3"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        with _serve(root, tmp_path / "ui.log") as served:
            deadline = time.time() + 120
            while not list(root.glob("CardsFlow/*/live/*/cards/*.json")):
                assert proc.poll() is None and time.time() < deadline, "the live step never started"
                time.sleep(0.05)
            task = next(root.glob("CardsFlow/*/live/*")).name
            _strict(page)
            page.goto(f"{served.url}/task/CardsFlow/{id_file.read_text()}/live/{task}")
            card = page.locator(".aflow-card .c-card")
            status = card.locator('[data-component-id="status"]')
            status.filter(has_text="step 0").wait_for()
            assert card.locator(".c-head-state.live").count() == 1
            for i in (1, 2, 3):
                (tmp_path / f"gate.{i}").touch()  # the step goes on; the page is not reloaded
                status.filter(has_text=f"step {i}").wait_for(timeout=60_000)
                assert card.locator("progress").evaluate("p => p.value") == i
                if i == 2:
                    _shot(page, shots, "cards-dynamic-running")
            assert proc.wait(timeout=120) == 0
            page.locator(".aflow-card .c-head-state", has_text="final").wait_for(timeout=60_000)
            _shot(page, shots, "cards-dynamic-final")
            assert not _violations(page)
    finally:
        if proc.poll() is None:
            proc.kill()


@contextlib.contextmanager
def _serve_s3(datastore: str, root: str, log: Path) -> Iterator[Server]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aflow", "ui", "--port", "0", "--datastore", datastore,
             "--datastore-root", root],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"http://127\.0\.0\.1:\d+/\S*", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Server(found.group(0), proc)
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_card_read_from_an_s3_store(
    page: Any, s3_datastore: tuple[str, str], tmp_path: Path, shots: Path
) -> None:
    datastore, root = s3_datastore
    id_file = tmp_path / "run_id"
    done = run_cli(
        "run", str(FLOW), "-q", "--datastore", datastore, "--datastore-root", root,
        "--run-id-file", str(id_file), "--steps", "1", timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with _serve_s3(datastore, root, tmp_path / "ui.log") as served:
        _strict(page)
        page.goto(f"{served.url}/task/CardsFlow/{id_file.read_text()}/report/2")
        page.locator('.aflow-cards-item[data-card="0.0.blank.chart"] .c-vega canvas').wait_for()
        page.locator(".c-dag-step.current").wait_for()
        _shot(page, shots, "cards-s3")


def test_a_failed_tasks_refreshed_card_says_it_is_not_final(
    page: Any, tmp_path: Path, shots: Path
) -> None:
    root = tmp_path / "store"
    id_file = tmp_path / "run_id"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFLOW_DATASTORE_ROOT", str(root))
        done = run_cli("run", str(FLOWS / "cards_failing.py"), "-q", "--run-id-file", str(id_file))
    assert done.returncode == 1 and "the step fails after its card refreshed" in done.stderr
    with _serve(root, tmp_path / "ui.log") as served:
        page.goto(f"{served.url}/task/CardsFailingFlow/{id_file.read_text()}/start/1")
        item = page.locator(".aflow-cards-item")
        assert "the task did not succeed" in item.locator("h3").inner_text()
        item.locator(".c-head-state", has_text="as last refreshed").wait_for()
        assert item.locator(".c-markdown").inner_text() == "got this far"
        _shot(page, shots, "cards-failed-task")
