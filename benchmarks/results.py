"""What a benchmark run measured: one record per measurement, gathered in :class:`BenchReport`.

Every record is a dataclass that serialises to JSON as it is; raw samples, which
only the plot needs, live in :attr:`BenchReport.samples` and stay out of the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from benchmarks.resources import ResourceUse
from benchmarks.stats import Summary

System = Literal["herald", "celery"]


@dataclass(frozen=True)
class IngestionRun:
    """``POST /api/v1/events`` at one client concurrency."""

    concurrency: int
    seconds: float
    accepted: int
    failed: int
    per_second: float
    latency_ms: Summary
    #: event rows counted in the database after the run
    rows: int

    @property
    def durable(self) -> bool:
        """Every 202 has its committed row: as many rows as accepted events."""
        return self.rows == self.accepted


@dataclass(frozen=True)
class BatchIngestionRun:
    """``POST /api/v1/events/batch``: ``clients`` clients sending ``batch`` events a request."""

    clients: int
    batch: int
    seconds: float
    #: batch requests answered 207 (every entry valid, so each carries ``batch`` events)
    requests: int
    failed: int
    #: events per second inside the measured window
    per_second: float
    #: per batch request
    latency_ms: Summary
    #: event rows counted in the database after the run
    rows: int

    @property
    def durable(self) -> bool:
        """Every entry of every 207 has its committed row."""
        return self.rows == self.requests * self.batch


@dataclass(frozen=True)
class LatencyRound:
    """One low-load round: work sent one at a time, timed from send to finish."""

    system: System
    round: int
    #: herald: POST to execution succeeded; celery: publish to the chain's last task done
    end_to_end_ms: Summary
    #: time per step: from the first step's finish to the last's, over the hops between
    per_step_ms: Summary
    #: herald only: where a step's time goes (queue wait, run, ...), medians in ms
    breakdown_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DrainRound:
    """A queue of executions (chains) enqueued with workers stopped, then drained."""

    system: System
    round: int
    workers: int
    concurrency: int
    executions: int
    steps_per_execution: int
    #: steps finished (fewer than executions x steps when the drain hit its time limit)
    steps_done: int
    #: first step started to last step finished
    seconds: float
    #: steps per second sustained between the 10th and 90th percentile of finishes
    steps_per_second: float
    #: what the machine, Postgres and Redis did while the workers drained
    resources: ResourceUse | None = None

    @property
    def partial(self) -> bool:
        """The drain was stopped at its time limit before every step ran."""
        return self.steps_done < self.executions * self.steps_per_execution


@dataclass(frozen=True)
class DefinitionsBench:
    """Loading a large project and validating a payload against many subscribed schemas."""

    workflows: int
    tasks_per_workflow: int
    load_ms: Summary
    registry_build_ms: Summary
    subscribers: int
    validate_us: Summary


@dataclass(frozen=True)
class ScalePoint:
    """Step throughput at one worker count: herald, raw Celery, and what each drain cost."""

    workers: int
    concurrency: int
    #: median steps per second of the rounds
    herald: float | None
    celery: float | None
    #: herald / raw Celery, the median of the rounds' ratios
    ratio: float | None
    #: the resources of the round whose rate is closest to the median
    herald_resources: ResourceUse | None
    celery_resources: ResourceUse | None


@dataclass(frozen=True)
class Flattening:
    """Where one system's scale-out curve stops rising, and which resource was saturated."""

    system: System
    #: the worker count beyond which adding workers gained too little; None: it kept rising
    after: int | None
    #: the next worker count, where the saturation was read
    next: int | None
    #: relative gain in steps per second from ``after`` to the best larger worker count
    gain: float | None
    #: "CPU", "Redis", "Postgres", "none" (no saturated resource found) or "not measured"
    bottleneck: str
    #: the measured sentence the report prints
    why: str


@dataclass(frozen=True)
class PeakMemory:
    """The largest resident set any process of a role reached (VmHWM)."""

    role: str
    processes: int
    max_rss_mb: float
    #: the largest VmHWM of a main process, and of a pool child (prefork), of this role
    main_rss_mb: float = 0.0
    child_rss_mb: float = 0.0


@dataclass(frozen=True)
class ProfileEntry:
    """One function of a cProfile run."""

    function: str
    calls: int
    own_ms: float
    cumulative_ms: float


@dataclass(frozen=True)
class HotPathProfile:
    """An in-process profile of a hot path, per call and its top functions."""

    target: str
    calls: int
    per_call_us: float
    #: herald's own functions (app, workers, workflows) by cumulative time: which part costs
    herald: list[ProfileEntry]
    #: any function by own time: where the processor actually is
    hottest: list[ProfileEntry]


@dataclass(frozen=True)
class Comparison:
    """A herald figure, raw Celery's, and the target it is held to (reported, not asserted)."""

    name: str
    herald: float | None
    celery: float | None
    #: herald / celery, or herald - celery for added latency; see ``unit``
    value: float | None
    unit: str
    target: str
    met: bool | None


@dataclass
class BenchReport:
    """Everything one run measured, with the machine it ran on."""

    mode: str
    started_at: str
    machine: dict[str, str]
    settings: dict[str, object] = field(default_factory=dict)
    ingestion: list[IngestionRun] = field(default_factory=list)
    batch_ingestion: list[BatchIngestionRun] = field(default_factory=list)
    latency: list[LatencyRound] = field(default_factory=list)
    drains: list[DrainRound] = field(default_factory=list)
    #: the drains by worker count, and where each system's curve flattens (derived)
    scaleout: list[ScalePoint] = field(default_factory=list)
    flattening: list[Flattening] = field(default_factory=list)
    definitions: DefinitionsBench | None = None
    memory: list[PeakMemory] = field(default_factory=list)
    profiles: list[HotPathProfile] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    #: phases that could not run, with the reason
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: raw samples for the plot, by series name (milliseconds); not written to JSON
    samples: dict[str, list[float]] = field(default_factory=dict)
