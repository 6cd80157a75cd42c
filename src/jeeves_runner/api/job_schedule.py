"""When a job fires next: GET /jobs/:id/next (read in the job's own zone, else the
runner's), and the `next_run` of GET /jobs and GET /jobs/:id (the scheduler's own plan)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from itertools import chain, compress, count
from operator import ne
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import error_responses, json_response
from jeeves_runner.models import format_instant
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone
from jeeves_runner.scheduling.fire_schedule import FirePlan, utc_from_timestamp
from jeeves_runner.store.jobs_list import JobsListView

router = APIRouter(tags=["jobs"])

N_DEFAULT = 10
N_MAX = 100
N_ERROR = f"n must be an integer from 1 to {N_MAX}"


class NextFires(BaseModel):
    next: list[str]


def next_fires(
    schedule: str, zone_name: str | None, default_zone: tzinfo, now: datetime, count: int
) -> list[str]:
    """Up to `count` fire instants after `now` (format_instant text); none for a schedule
    that cannot fire, or one in a zone this machine does not know."""
    try:
        parsed = parse(schedule)
        zone = resolve_zone(zone_name) if zone_name is not None else default_zone
    except InvalidSchedule:
        return []
    fires: list[str] = []
    current = now
    for _ in range(count):
        fire = parsed.next_after(current, zone)
        if fire is None:
            break
        fires.append(format_instant(fire))
        current = fire
    return fires


def next_run(row: dict[str, Any], request: Request) -> str | None:
    """The next fire of a job row, as the scheduler will fire it; null when disabled or
    never firing. The same answer GET /jobs gives (both read the scheduler's plan)."""
    ts = get_control(request).fire_plan().next.get(row["id"])
    return None if ts is None else format_instant(utc_from_timestamp(ts))


_ITEM_START = b'{"id":"'
_FOLLOWING_ITEM = b"}," + _ITEM_START
_FIRST_ITEM = b'{"jobs":[' + _ITEM_START
_NULL_START = b'{"next_run":null,"id":"'
# The last plan's fragments: job id (bytes) -> `{"next_run":"<instant>","id":"`. Built once per
# plan (a fire or a change makes a new one), on the store's probe thread where lists are built.
_fragments: tuple[FirePlan, dict[bytes, bytes]] | None = None


def _fragments_of(plan: FirePlan) -> dict[bytes, bytes]:
    global _fragments
    known = _fragments
    if known is not None and known[0] is plan:
        return known[1]
    texts: dict[float, bytes] = {}  # jobs often share an instant: each is formatted once
    fragments: dict[bytes, bytes] = {}
    for job_id, ts in plan.next.items():
        text = texts.get(ts)
        if text is None:
            instant = format_instant(utc_from_timestamp(ts)).encode()
            text = texts[ts] = b'{"next_run":"' + instant + b'","id":"'
        fragments[job_id.encode()] = text
    _fragments = (plan, fragments)
    return fragments


def with_next_runs(body: bytes, plan: FirePlan) -> bytes:
    """`{"jobs": [...]}` as the store encoded it, each job given its `next_run` from `plan`.

    Spliced into the bytes at the start of each job object, not decoded and encoded again
    (several times the cost): the per-job work is one id cut and one dict lookup, the rest
    is bytes methods. A job object starts `{"id":"` (the store's encodings put the id first)
    right after the array's `[` or a `},`, and nothing else in a job can (no other field
    holds objects in an array; a quote inside a string is escaped): the counts check it.
    An encoding of another shape (spaces, an id with an escape) is decoded instead."""
    parts = body.split(_ITEM_START)
    if len(parts) == 1:
        return body
    if not body.startswith(_FIRST_ITEM) or body.count(_FOLLOWING_ITEM) != len(parts) - 2:
        return _with_next_runs_decoded(body, plan)
    ids = [part[: part.find(b'"')] for part in parts[1:]]
    if b"\\" in b"".join(ids):  # an escape in an id: cut at the wrong quote
        return _with_next_runs_decoded(body, plan)
    get = _fragments_of(plan).get
    fragments = [get(job_id, _NULL_START) for job_id in ids]
    return b"".join(chain((parts[0],), chain.from_iterable(zip(fragments, parts[1:], strict=True))))


class NextRunList:
    """GET /jobs's body with each job's `next_run`, kept job by job beside the store's
    `JobsListView`: a write re-reads one job's fragment and a fire moves one job's next
    instant, so only that job is spliced again and the body joined, instead of cutting and
    splicing all of a 784 KB body (1,000 jobs) after every change (measured: most of an
    uncached GET /jobs's time).

    Like the view, one reader at a time (the store's probe thread)."""

    def __init__(self) -> None:
        # Side by side with the view's pieces as last joined: each result, and the next
        # instant it was made with; which of the view's epochs and edits it follows, and
        # the plan version its instants are from.
        self._made: list[bytes] = []
        self._next: list[float | None] = []
        self._epoch = -1
        self._edits_seen = 0
        self._plan_version: int | None = None
        self._texts: dict[float, bytes] = {}  # instant -> its `{"next_run":"…",` start
        self._last: tuple[bytes, int, bytes] | None = None  # (store body, plan version, out)

    def body(self, view: JobsListView, body: bytes, plan: FirePlan) -> bytes:
        """`body` (what `view` last assembled) with next_run from `plan`."""
        last = self._last
        if last is not None and last[0] is body and last[1] == plan.version:
            return last[2]
        if view.body is not body or not view.pieces:
            out = with_next_runs(body, plan)  # a list too large to be kept piece by piece
        else:
            out = self._join(view, plan)
        self._last = (body, plan.version, out)
        return out

    def _join(self, view: JobsListView, plan: FirePlan) -> bytes:
        pieces = view.pieces
        if plan.version == self._plan_version and view.epoch == self._epoch:
            upcoming = self._next
        else:
            upcoming = list(map(plan.next.get, view.order))
        moved: Iterable[int]
        if view.epoch != self._epoch or len(self._made) != len(pieces):
            moved = range(len(pieces))
            self._made = [b""] * len(pieces)
        else:
            # Jobs the view re-read since the last join, and jobs whose next fire moved
            # (found by C loops: a Python loop over 1,000 jobs costs more than the join).
            moved = set(view.edited[self._edits_seen :])
            if upcoming is not self._next and upcoming != self._next:
                moved.update(compress(count(), map(ne, upcoming, self._next)))
        made = self._made
        for at in moved:
            made[at] = self._spliced(pieces[at], upcoming[at])
        self._next, self._plan_version = upcoming, plan.version
        self._epoch, self._edits_seen = view.epoch, len(view.edited)
        if len(self._texts) > 4 * len(made) + 64:
            self._texts.clear()
        # One join, so one copy of the body: the brackets go on the end pieces meanwhile.
        ends = made[0], made[-1]
        made[0] = _OPEN + made[0]
        made[-1] = made[-1] + _CLOSE
        out = b",".join(made)
        made[0], made[-1] = ends
        return out

    def _spliced(self, piece: bytes, ts: float | None) -> bytes:
        start = _NULL_FIELD if ts is None else self._texts.get(ts)
        if start is None and ts is not None:  # jobs often share an instant: formatted once
            instant = format_instant(utc_from_timestamp(ts)).encode()
            start = self._texts[ts] = b'{"next_run":"' + instant + b'",'
        assert start is not None
        if piece.startswith(b'{"'):
            return start + piece[1:]
        job = orjson.loads(piece)  # not an object the store encodes: never seen, but safe
        job["next_run"] = None if ts is None else format_instant(utc_from_timestamp(ts))
        return orjson.dumps(job)


_OPEN = b'{"jobs":['
_CLOSE = b"]}"
_NULL_FIELD = b'{"next_run":null,'


def _with_next_runs_decoded(body: bytes, plan: FirePlan) -> bytes:
    document = orjson.loads(body)
    for job in document["jobs"]:
        ts = plan.next.get(job["id"])
        job["next_run"] = None if ts is None else format_instant(utc_from_timestamp(ts))
    return orjson.dumps(document)


def _count(text: str | None) -> int:
    if text is None:
        return N_DEFAULT
    if not text.isascii() or not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= N_MAX:
        raise ApiError(400, N_ERROR)
    return int(text)


@router.get(
    "/jobs/{job_id}/next",
    response_model=NextFires,
    responses=error_responses(400, 404),
    openapi_extra={
        "parameters": [
            {
                "name": "n",
                "in": "query",
                "required": False,
                "description": f"How many fires: 1 to {N_MAX}, {N_DEFAULT} when omitted.",
                "schema": {"type": "integer", "minimum": 1, "maximum": N_MAX},
            }
        ]
    },
    summary="A job's next fire instants (empty when disabled or never firing)",
)
async def job_next(job_id: str, request: Request) -> Response:
    count = _count(request.query_params.get("n"))
    job = await get_control(request).store.read(lambda s: s.jobs.get_job(job_id))
    if job is None:
        raise ApiError(404, "Job not found")
    fires = (
        next_fires(
            job.schedule,
            job.timezone,
            request.app.state.zone,
            request.app.state.clock.now(),
            count,
        )
        if job.enabled
        else []
    )
    return json_response({"next": fires})
