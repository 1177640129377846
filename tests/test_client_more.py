"""The client as Metaflow users use it: changing a run's tags (also from a step), Metaflow(),
Run.code."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

import aflow
from aflow.exception import AflowException
from aflow.stores.records import RunRecord, run_record_key

sys.path.insert(0, str(Path(__file__).parent / "wider_flows"))

FLOW = Path(__file__).parent / "wider_flows" / "tags_flow.py"


def test_tags_change_and_persist(store_root: Path) -> None:
    from tags_flow import TagsFlow

    first = anyio.run(lambda: aflow.run_flow(TagsFlow, tags=["given"]))
    assert first.successful, first.error
    run = aflow.Run(f"TagsFlow/{first.id}")
    assert {"given", "from_step"} <= run.user_tags  # added inside the step, while it ran
    record = RunRecord.unpack((store_root / run_record_key("TagsFlow", first.id)).read_bytes())
    assert "from_step" in record.tags  # folded into the record the scheduler wrote last
    run.add_tag("later")
    run.replace_tag("given", "replaced")
    run.remove_tag("from_step")
    again = aflow.Run(f"TagsFlow/{first.id}")
    assert again.user_tags == {"later", "replaced"}
    assert [r.id for r in aflow.Flow("TagsFlow").runs("later")] == [first.id]
    user = next(t for t in again.system_tags if t.startswith("user:"))
    with pytest.raises(AflowException, match="system tag"):
        again.remove_tag(user)
    with pytest.raises(AflowException, match="non-empty string"):
        again.add_tag("")


def test_metaflow_and_run_code(store_root: Path) -> None:
    from tags_flow import TagsFlow

    run = anyio.run(lambda: aflow.run_flow(TagsFlow))
    code = aflow.Run(f"TagsFlow/{run.id}").code
    assert code is not None and code.script_name == "tags_flow.py"
    assert code.flowspec == FLOW.read_text()
    assert code.tarball.getnames() == ["tags_flow.py"]
    assert [f.id for f in aflow.Metaflow().flows] == ["TagsFlow"]
