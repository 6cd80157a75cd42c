"""Cluster mode's values: nodes, claimed runs and the leader's plan for a job. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jeeves_runner.models import RunTrigger

# A label: what a node's `cluster.labels` and a job's `run_on` hold (a node id is one too).
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
LABEL_RULE = "1-63 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"

# How many heartbeats a node may miss before a peer declares it lost.
LOST_AFTER_HEARTBEATS = 3
NODE_STOPPED_DURING_RUN = "Node {node} stopped during this run"
NODE_STOPPED_BEFORE_RUN = "Node {node} stopped before this run started"
# A run whose `running` mark this node could not take: a peer declared the node lost
# meanwhile and gave its claim to another node (or closed it). Its child never starts.
CLAIM_TAKEN_BACK = "The claim was given back to the pool before this run started"


@dataclass(frozen=True, slots=True)
class NodeBeat:
    """What a node writes at each heartbeat."""

    node_id: str
    host: str
    labels: tuple[str, ...]
    heartbeat_ms: int
    started_at: str
    at: str
    leader: bool
    # Runs this node has in flight: adopted (node_id set) when nobody owns them yet, so a
    # manual run started here is closed by a peer if this node dies.
    run_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LostNode:
    node_id: str
    closed_runs: int  # `running` runs closed as "node x stopped during this run"
    returned_runs: int  # claimed, not started: back in the pool


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    run_id: int
    job_id: str
    trigger: RunTrigger
    scheduled_for: str | None  # None for a manual run sent here by another node
    attempt: int = 1  # a retry's try number (trigger `retry`), kept when another node runs it
    retry_of: int | None = None  # a retry's first run


@dataclass(frozen=True, slots=True)
class MissedGap:
    """Consecutive scheduled instants nothing ran, recorded as one `missed` row."""

    first: str
    last: str
    count: int


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What the leader writes for one job: its due runs (`pending`, in the pool) and fires
    recorded as missed, moving the job's planned_through from `previous` (the value it read;
    None: never planned) to `through`. Refused when another leader moved it first."""

    job_id: str
    previous: str | None
    through: str
    run_at: tuple[str, ...] = ()
    missed: MissedGap | None = None


@dataclass(slots=True)
class PlanOutcome:
    inserted: int = 0  # pending rows written (an instant another node wrote is not counted)
    missed: int = 0  # missed rows written
    refused: list[str] = field(default_factory=list)  # jobs another leader planned first
