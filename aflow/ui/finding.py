"""Finding runs: the runs list's filters and sort order, read from and written to the URL.

A query keeps what the user chose (status, tag, user, a start date range, a parameter value and a
sort column), so a filtered, sorted list is a link that can be shared or reloaded. Without a filter
and in the default order (newest first) the runs page reads only the records it shows; otherwise it
reads every run's record (finished ones are kept, so only the first look pays). Pure functions: no
store, no HTML.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date

from aflow.client.core import id_order, run_tags
from aflow.stores.records import RunRecord

STATUSES = ("running", "done", "failed", "cancelled", "dead")
SORTS = ("flow", "run", "status", "started", "duration", "done", "failed", "stopped")


@dataclass(frozen=True)
class RunQuery:
    status: str = ""
    tag: str = ""
    user: str = ""
    since: str = ""  # YYYY-MM-DD: started on or after this day (local time)
    until: str = ""  # YYYY-MM-DD: started on or before this day
    param: str = ""  # name=value
    sort: str = ""  # a column of SORTS, `-` before it for descending; "" is newest first

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> RunQuery:
        got = {f.name: (query.get(f.name) or "").strip()[:200] for f in fields(cls)}
        if got["status"] not in STATUSES:
            got["status"] = ""
        for day in ("since", "until"):
            if got[day] and _day(got[day]) is None:
                got[day] = ""
        if got["sort"].lstrip("-") not in SORTS:
            got["sort"] = ""
        return cls(**got)

    @property
    def filtering(self) -> bool:
        return any((self.status, self.tag, self.user, self.since, self.until, self.param))

    @property
    def plain(self) -> bool:
        """Newest first with no filter: the page needs only its own records."""
        return not self.filtering and self.sort in ("", "-run", "-started")

    def link(self, **changes: str) -> dict[str, str]:
        """The query's URL parameters (those set), with `changes` applied."""
        chosen = replace(self, **changes)
        return {f.name: getattr(chosen, f.name) for f in fields(self) if getattr(chosen, f.name)}

    def sorted_by(self, column: str) -> str:
        """The `sort` a column header sets: that column, descending first, then flipped."""
        return column if self.sort == f"-{column}" else f"-{column}"


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def matches(query: RunQuery, record: RunRecord, status: str) -> bool:
    if query.status and status != query.status:
        return False
    if query.tag and query.tag not in run_tags(record):
        return False
    if query.user and (record.user or "") != query.user:
        return False
    started = date.fromtimestamp(record.started_at) if record.started_at else None
    since, until = _day(query.since), _day(query.until)
    if since and (started is None or started < since):
        return False
    if until and (started is None or started > until):
        return False
    if query.param:
        name, _, value = query.param.partition("=")
        shown = record.params.get(name.strip())
        # Parameters are kept as their repr: 'abc' matches "'abc'" too.
        if shown is None or value.strip() not in (shown, shown.strip("'\"")):
            return False
    return True


def duration(record: RunRecord, status: str, now: float) -> float:
    end = record.finished_at or (record.heartbeat_at if status == "dead" else now)
    return end - record.started_at


def sort_key(column: str, flow: str, run_id: str, record: RunRecord, status: str) -> object:
    now = time.time()
    return {
        "flow": (flow, id_order(run_id)),
        "run": id_order(run_id),
        "status": (status, id_order(run_id)),
        "started": (record.started_at, id_order(run_id)),
        "duration": duration(record, status, now),
        "done": record.tasks_done,
        "failed": record.tasks_failed,
        "stopped": record.tasks_stopped,
    }[column]
