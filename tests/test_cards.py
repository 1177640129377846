"""@card: authoring as in Metaflow, cards saved with their task, read back with get_cards and
`aflow card view/get/list`, escaped content, failures that never fail the task, dynamic cards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_batch_backend
from conftest import FLOWS, run_cli, run_script

from aflow.cards import (
    Artifact,
    Error,
    Html,
    Image,
    JSONViewer,
    Markdown,
    ProgressBar,
    PythonCode,
    Table,
    ValueBox,
    VegaChart,
    YAMLViewer,
)
from aflow.cards.collector import CardCollector, CardSlot
from aflow.cards.render import card_html

FLOW = FLOWS / "cards_flow.py"
on_batch = test_batch_backend.on_batch  # the AWS Batch emulator, its data in moto's S3


def _run(*extra: str) -> str:
    done = run_cli("run", str(FLOW), "-q", *extra, timeout=180)
    assert done.returncode == 0, done.stderr
    return re.search(r"run-id (\d+)|^(\d+)$", done.stderr + done.stdout, re.M).group(0).split()[-1]


@pytest.fixture(scope="module")
def cards_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cards") / "store"
    os.environ["AFLOW_DATASTORE_ROOT"] = str(root)
    try:
        id_file = root.parent / "run_id"
        done = run_cli("run", str(FLOW), "--run-id-file", str(id_file), timeout=180)
        assert done.returncode == 0, done.stderr
        return root, id_file.read_text()
    finally:
        del os.environ["AFLOW_DATASTORE_ROOT"]


@pytest.fixture
def in_store(cards_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AFLOW_DATASTORE_ROOT", str(cards_run[0]))
    return cards_run[1]


def _data(root: Path, run_id: str, step_task: str, name: str) -> dict:
    return json.loads((root / "CardsFlow" / run_id / step_task / "cards" / f"{name}.json").read_text())


def _texts(components: list[dict]) -> list[str]:
    out = []
    for c in components:
        out += [str(c.get(k)) for k in ("text", "html", "title") if c.get(k)]
        out += _texts(c.get("contents") or [])
        for row in c.get("rows") or []:
            out += _texts(row)
    return out


# -- authoring and storage ------------------------------------------------------------------------


def test_each_card_of_each_step_is_saved_with_its_task(cards_run: tuple[Path, str]) -> None:
    root, run_id = cards_run
    tasks = root / "CardsFlow" / run_id
    assert sorted(p.name for p in (tasks / "start/1/cards").iterdir()) == [
        "0.0.default.html", "0.0.default.json"
    ]  # fmt: skip
    # Two cards on one step, in the order the source lists them, each with its id.
    assert sorted(p.name for p in (tasks / "report/2/cards").iterdir()) == [
        "0.0.blank.chart.html", "0.0.blank.chart.json",
        "0.1.default.summary.html", "0.1.default.summary.json",
        "0.2.blank.slow.html", "0.2.blank.slow.json",
    ]  # fmt: skip
    assert not (tasks / "end/4/cards").exists()  # no @card: nothing saved


def test_the_default_card_shows_the_task_its_parameters_artifacts_and_dag(
    cards_run: tuple[Path, str],
) -> None:
    root, run_id = cards_run
    data = _data(root, run_id, "report/2", "0.1.default.summary")
    assert data["final"] and data["type"] == "default" and data["id"] == "summary"
    facts, *rest = data["components"]
    assert dict(facts["items"])["Step"] == "report" and facts["timing"]["finished"] >= facts[
        "timing"
    ]["started"]
    sections = {c["title"]: c for c in rest if c["type"] == "section"}
    assert set(sections) == {"Parameters", "Artifacts", "DAG"}
    params = [r[0]["text"] for r in sections["Parameters"]["contents"][0]["rows"]]
    assert params == ["alpha", "steps"]
    artifacts = {r[0]["text"]: r[3]["text"] for r in sections["Artifacts"]["contents"][0]["rows"]}
    assert "3 rows \N{MULTIPLICATION SIGN} 2 columns" in artifacts["frame"]  # the UI's DataFrame preview
    assert artifacts["scores"] == "{'a': 1, 'b': 2}"  # inherited from start, loaded to preview
    dag = sections["DAG"]["contents"][0]
    assert dag["current"] == "report" and dag["columns"] == [["start"], ["report"], ["live"], ["end"]]
    # What the step appended comes between the task's facts and its sections.
    kinds = [c["type"] for c in rest if c["type"] != "section"]
    assert kinds == ["markdown", "table", "artifact", "image"]
    table = next(c for c in rest if c["type"] == "table")
    assert table["headers"] == ["k", "v"] and table["rows"][0][1]["text"] == "3"  # from a DataFrame


def test_content_is_escaped_unless_it_says_it_is_html(cards_run: tuple[Path, str]) -> None:
    root, run_id = cards_run
    data = _data(root, run_id, "start/1", "0.0.default")
    md = next(c for c in data["components"] if c["type"] == "markdown")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md["html"]
    assert "<strong>bold</strong>" in md["html"]
    cells = next(c for c in data["components"] if c["type"] == "table")["rows"]
    assert cells[1][0] == {"type": "text", "text": "<b>y</b>"}  # drawn as text by the renderer
    html = (root / "CardsFlow" / run_id / "start/1/cards/0.0.default.html").read_text()
    assert "<script>alert" not in html and "<b>y</b>" not in html


def test_the_html_document_is_self_contained(cards_run: tuple[Path, str]) -> None:
    root, run_id = cards_run
    chart = (root / "CardsFlow" / run_id / "report/2/cards/0.0.blank.chart.html").read_text()
    plain = (root / "CardsFlow" / run_id / "start/1/cards/0.0.default.html").read_text()
    for doc in (chart, plain):
        assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", doc)
        assert "<style>" in doc and "window.aflowCards" in doc
    assert ".vegaLite={}" in chart and len(chart) > 800_000  # the bundled, pinned vega libraries
    assert len(plain) < 60_000  # only cards with a chart carry them


def test_a_failing_component_or_card_never_fails_the_task(cards_run: tuple[Path, str]) -> None:
    root, run_id = cards_run
    chart = _data(root, run_id, "report/2", "0.0.blank.chart")
    kinds = [c["type"] for c in chart["components"]]
    assert kinds == ["vega", "error", "error"]
    assert "Broken could not be rendered" in _texts(chart["components"])
    assert any("this component always fails" in t for t in _texts(chart["components"]))
    slow = _data(root, run_id, "report/2", "0.2.blank.slow")
    assert slow["error"] and "longer than its timeout (1 s)" in " ".join(_texts(slow["components"]))
    record = (root / "CardsFlow" / run_id / "end/4/0.mpk").exists()
    assert record  # the run went on to its end


def test_a_dynamic_card_updates_while_its_task_runs(
    store_root: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    env = {**os.environ, "CARDS_GATE": str(gate)}
    id_file = tmp_path / "run_id"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", str(FLOW), "-q", "--run-id-file", str(id_file),
         "--steps", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def card() -> dict | None:
            if not id_file.exists():
                return None
            found = list((store_root / "CardsFlow" / id_file.read_text()).glob("live/*/cards/*.json"))
            return json.loads(found[0].read_text()) if found else None

        def wait_for(text: str) -> dict:
            deadline = time.time() + 120
            while time.time() < deadline:
                data = card()
                if data and any(text in t for t in _texts(data["components"])):
                    return data
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
            raise AssertionError(f"the card never showed {text!r}: {card()}")

        first = wait_for("step 0")
        assert not first["final"] and first["components"][0]["value"] == 0
        for i in (1, 2):
            (tmp_path / f"gate.{i}").touch()
            seen = wait_for(f"step {i}")
            assert seen["components"][0]["value"] == i
        assert proc.wait(timeout=120) == 0
        final = card()
        assert final and final["final"] and final["components"][0]["value"] == 2
    finally:
        if proc.poll() is None:
            proc.kill()


# -- reading cards back ---------------------------------------------------------------------------


def test_get_cards_reads_a_tasks_cards(in_store: str) -> None:
    from aflow import Task
    from aflow.cards import get_cards

    cards = get_cards(Task(f"CardsFlow/{in_store}/report/2"))
    assert [(c.type, c.id) for c in cards] == [
        ("blank", "chart"), ("default", "summary"), ("blank", "slow")
    ]  # fmt: skip
    summary = get_cards(f"CardsFlow/{in_store}/report/2", id="summary")[0]
    assert summary.html.startswith("<!doctype html>")
    assert get_cards(f"CardsFlow/{in_store}/report/2", type="default")[0].data["id"] == "summary"
    assert "srcdoc=" in cards[1]._repr_html_()
    assert get_cards(f"CardsFlow/{in_store}/end/4") == []


def test_card_view_get_and_list_commands(in_store: str, tmp_path: Path) -> None:
    run_id = in_store
    listed = run_cli("card", "list", str(FLOW))  # the latest run
    assert listed.returncode == 0, listed.stderr
    assert f"CardsFlow/{run_id}/report/2  default id=summary" in listed.stdout
    assert f"CardsFlow/{run_id}/start/1  default" in listed.stdout

    out = tmp_path / "card.html"
    got = run_cli("card", "get", f"CardsFlow/{run_id}/start/1", str(out))
    assert got.returncode == 0, got.stderr
    assert out.read_text().startswith("<!doctype html>")

    viewed = run_cli("card", "view", "CardsFlow", f"{run_id}/report/2", "--id", "chart", "--no-browser")
    assert viewed.returncode == 0, viewed.stderr
    path = Path(viewed.stdout.strip().splitlines()[-1])
    assert path.exists() and "vegaEmbed" in path.read_text()

    # As in Metaflow: python flow.py card ..., and STEP alone means the latest run.
    script = run_script(FLOW, "card", "get", "start")
    assert script.returncode == 0, script.stderr
    assert script.stdout.startswith("<!doctype html>")
    as_json = run_script(FLOW, "card", "list", f"{run_id}/report/2", "--as-json")
    assert [c["id"] for c in json.loads(as_json.stdout)] == ["chart", "summary", "slow"]

    # RUN_ID/STEP/TASK_ID alone: the store says which flow's run it is.
    alone = run_cli("card", "view", f"{run_id}/start/1", "--no-browser")
    assert alone.returncode == 0, alone.stderr
    assert f"CardsFlow-{run_id}-start-1-" in alone.stdout

    missing = run_cli("card", "view", "CardsFlow", f"{run_id}/end/4", "--no-browser")
    assert missing.returncode == 1 and "has no cards" in missing.stderr


def test_with_card_adds_a_default_card_to_every_step(store_root: Path) -> None:
    done = run_cli("run", str(FLOWS / "inspect_flow.py"), "-q", "--with", "card")
    assert done.returncode == 0, done.stderr
    cards = sorted(store_root.glob("*/*/*/*/cards/*.json"))
    steps = {p.parts[-4] for p in cards}
    flow_steps = {p.parts[-3] for p in store_root.glob("*/*/*/*/0.mpk")}
    assert steps == flow_steps and all(p.name == "0.0.default.json" for p in cards)


@pytest.mark.parametrize("store", ["s3_datastore", "azure_datastore", "gcs_datastore"])
def test_cards_in_a_cloud_store(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    datastore, root = request.getfixturevalue(store)
    id_file = tmp_path / "run_id"
    done = run_cli(
        "run", str(FLOW), "-q", "--datastore", datastore, "--datastore-root", root,
        "--run-id-file", str(id_file), "--steps", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = id_file.read_text()
    got = run_cli(
        "card", "get", f"CardsFlow/{run_id}/report/2", "--id", "summary",
        "--datastore", datastore, "--datastore-root", root,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("<!doctype html>") and "summary" in got.stdout


# -- components and current.card, in-process -----------------------------------------------------


def _slot(index: int, type: str = "default", id: str | None = None, customize: bool = False) -> CardSlot:
    return CardSlot(index, type, id, {}, 5, 0, customize)


def test_which_card_current_card_edits(capsys: pytest.CaptureFixture[str]) -> None:
    plain, named = _slot(0), _slot(1, "blank", "b")
    cards = CardCollector([plain, named])
    cards.append(Markdown("to the card without an id"))
    cards["b"].append(Markdown("to b"))
    assert len(plain.components) == 1 and len(named.components) == 1
    custom = _slot(1, "blank", "c", customize=True)
    cards = CardCollector([_slot(0), custom])
    cards.append(Markdown("x"))
    assert len(custom.components) == 1
    cards = CardCollector([_slot(0, id="a"), _slot(1, id="b")])
    cards.append(Markdown("lost"))  # cannot tell which: a warning, never an error
    cards["nope"].append(Markdown("lost too"))
    err = capsys.readouterr().err
    assert "cannot tell which" in err and "no @card has id 'nope'" in err
    cards = CardCollector([_slot(0)])
    cards.append(ProgressBar(max=10), id="bar")
    cards.components["bar"].update(5)
    assert cards.components["bar"].to_data()["value"] == 5
    cards["missing"] = [Markdown("x")]
    cards.clear()
    assert len(cards.components) == 0


def test_current_card_outside_a_step_with_cards_only_warns(capsys: pytest.CaptureFixture[str]) -> None:
    from aflow import current

    current.card.append(Markdown("nowhere"))
    current.card.refresh()
    assert "this step has no @card" in capsys.readouterr().err


def test_components_data() -> None:
    import numpy as np
    import pandas as pd

    png = Image(bytes.fromhex("89504e470d0a1a0a"), label="x").to_data()
    assert png["src"].startswith("data:image/png;base64,")
    assert Image(b"not an image").to_data()["type"] == "error"
    table = Table.from_dataframe(pd.DataFrame({"a": np.arange(1500)})).to_data()
    assert len(table["rows"]) == 1000 and table["note"] == "the first 1,000 of 1,500 rows"
    art = Artifact(np.zeros((3, 4)), name="z").to_data()
    assert art["value_type"] == "numpy.ndarray" and "shape (3, 4)" in art["text"]
    err = Error(ValueError("bad"), "Oops").to_data()
    assert err["title"] == "Oops" and "ValueError: bad" in err["text"]
    assert Html("<b>mine</b>").to_data() == {"type": "html", "html": "<b>mine</b>"}
    box = ValueBox(title="Rows", value=1)
    box.update(value=2, change_indicator="up")
    assert box.to_data() | {} == {
        "type": "valuebox", "title": "Rows", "value": "2", "subtitle": None, "theme": "default",
        "change": "up",
    }  # fmt: skip
    assert "def _slot" in PythonCode(_slot).to_data()["text"]
    assert JSONViewer({"a": [1]}).to_data()["text"] == '{\n  "a": [\n    1\n  ]\n}'
    assert YAMLViewer({"a": 1}).to_data()["type"] == "code"
    assert "href" not in Markdown("[x](javascript:alert(1))").to_data()["html"]  # not a link
    with pytest.raises(TypeError):
        Error("x").update()


def test_matplotlib_pil_and_altair_objects() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    assert Image.from_matplotlib(fig).to_data()["src"].startswith("data:image/png;base64,")
    assert Image(ax).to_data()["src"].startswith("data:image/png")  # an Axes: its figure
    pil = pytest.importorskip("PIL.Image")
    assert Image.from_pil_image(pil.new("RGB", (4, 4))).to_data()["src"].startswith("data:image/png")
    alt = pytest.importorskip("altair")
    chart = alt.Chart(pd_frame()).mark_line().encode(x="a", y="b")
    spec = VegaChart.from_altair_chart(chart).to_data()["spec"]
    assert spec["mark"]["type"] == "line" if isinstance(spec["mark"], dict) else spec["mark"] == "line"
    assert "vegaEmbed" in card_html({"components": [{"type": "vega", "spec": spec}]})


def pd_frame():  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.DataFrame({"a": [1, 2, 3], "b": [3, 1, 2]})


def test_the_example_flow_with_matplotlib_and_altair(store_root: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("altair")
    from conftest import EXAMPLES

    done = run_cli("run", str(EXAMPLES / "cards.py"), "-q", "--epochs", "5", timeout=180)
    assert done.returncode == 0, done.stderr
    (results,) = store_root.glob("CardsExample/*/train/*/cards/0.1.default.results.json")
    kinds = [c["type"] for c in json.loads(results.read_text())["components"]]
    assert kinds[:4] == ["facts", "table", "image", "vega"]
    (progress,) = store_root.glob("CardsExample/*/train/*/cards/0.0.blank.progress.json")
    bar, best = json.loads(progress.read_text())["components"]
    assert bar["value"] == 5 and best["value"] == "0.4"


def test_a_remote_task_saves_its_cards(on_batch: object, tmp_path: Path) -> None:
    """On AWS Batch (the emulator, data in moto's S3) the task renders its cards with the aflow
    of the code package, which must carry the renderer and the chart libraries."""
    flow = tmp_path / "remote_cards.py"
    flow.write_text(
        "from aflow import FlowSpec, card, current, step\n"
        "from aflow.cards import Markdown, VegaChart\n\n"
        "class RemoteCardsFlow(FlowSpec):\n"
        "    @card\n"
        "    @step\n"
        "    def start(self):\n"
        "        current.card.append(Markdown('from the container'))\n"
        "        current.card.append(VegaChart({'mark': 'bar', 'data': {'values': []}}))\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n\n"
        "if __name__ == '__main__':\n"
        "    RemoteCardsFlow()\n"
    )
    id_file = tmp_path / "run_id"
    done = run_script(
        flow, "run", "--with", "batch:cpu=1,queue=aflow-test-queue", "--run-id-file", str(id_file)
    )
    assert done.returncode == 0, done.stderr
    got = run_cli("card", "get", f"RemoteCardsFlow/{id_file.read_text()}/start/1")
    assert got.returncode == 0, got.stderr
    assert "from the container" in got.stdout and ".vegaLite={}" in got.stdout


def test_card_type_options() -> None:
    from types import SimpleNamespace

    from aflow.cards.runtime import TaskCards

    spec = SimpleNamespace(pathspec="F/1/s/2", attempt=0)
    titled = CardSlot(0, "blank", None, {"title": "Weekly report"}, 5, 0, False)
    html = CardSlot(1, "html", None, {"attribute": "page"}, 5, 0, False)
    unknown = CardSlot(2, "corise_special", None, {}, 5, 0, False)
    cards = TaskCards(spec, None, object, [titled, html, unknown])  # type: ignore[arg-type]
    titled.components.append(Markdown("body"))
    flow = SimpleNamespace(page="<h1>mine</h1>")
    assert [c["type"] for c in cards._build(titled, True, flow, None)["components"]] == [
        "heading", "markdown"
    ]  # fmt: skip
    assert cards._build(html, True, flow, None)["components"] == [
        {"type": "html", "html": "<h1>mine</h1>"}
    ]
    (error,) = cards._build(unknown, True, flow, None)["components"]
    assert error["type"] == "error" and "no card type 'corise_special'" in error["text"]


def test_card_view_without_a_desktop_prints_the_path(
    in_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    viewed = run_cli("card", "view", "CardsFlow", f"{in_store}/start/1", timeout=60)
    assert viewed.returncode == 0, viewed.stderr
    assert Path(viewed.stdout.strip()).is_file() and "no browser to open here" in viewed.stderr
