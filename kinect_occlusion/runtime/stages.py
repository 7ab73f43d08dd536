"""The stage graph, declared once: which processes run, what they read and write, in what order.

The supervisor's start and shutdown order, the child registry, the bus monitor's topics, the test
harness and the diagram in README.md / DESIGN.md all derive from :data:`STAGES`. Adding a stage is
one entry here (plus its module with a ``run(rt)`` function).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import messages as m


@dataclass(frozen=True)
class Stage:
    """One worker process of the pipeline.

    Args:
        name: process and worker name (``Status.worker``).
        module: module whose ``run(rt)`` is the worker's main loop.
        sections: config sections the worker receives (the first is its own).
        inputs, outputs: topics it subscribes to and publishes.
        start_rank, stop_rank: order of start-up (consumers before producers) and shutdown
            (producers before consumers), lowest first.
        essential: without it the pipeline produces no occlusion mask at all; giving it up stops
            the daemon (exit code 4) so a service manager restarts it.
        roles: the ``run --role`` values that run this stage (``all``: today's one-box pipeline;
            ``bedside``: capture for one camera; ``server``: inference for every camera of a ward).
        credit: topics read only as back-pressure under ``runtime.every_frame`` (capture counts the
            finished frames there); not data inputs, so they add no edge to the graph.
    """

    name: str
    module: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    start_rank: int
    stop_rank: int
    essential: bool
    roles: tuple[str, ...] = ("all", "server")
    credit: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage(
        "capture",
        "kinect_occlusion.capture.worker",
        ("camera",),
        (),
        (m.TOPIC_COLOR, m.TOPIC_DEPTH),
        start_rank=3,
        stop_rank=0,
        essential=True,
        roles=("all", "bedside"),
        credit=(m.TOPIC_OCCLUSION,),
    ),
    Stage(
        "deeplab",
        "kinect_occlusion.deeplab.worker",
        ("deeplab", "roi"),
        (m.TOPIC_COLOR,),
        (m.TOPIC_COARSE,),
        start_rank=2,
        stop_rank=1,
        essential=True,
    ),
    Stage(
        "sam",
        "kinect_occlusion.sam.worker",
        ("sam",),
        (m.TOPIC_COLOR, m.TOPIC_COARSE),
        (m.TOPIC_PARTITION,),
        start_rank=1,
        stop_rank=2,
        essential=False,
    ),
    Stage(
        "fuser",
        "kinect_occlusion.fuser.worker",
        ("fuser",),
        (m.TOPIC_COARSE, m.TOPIC_PARTITION, m.TOPIC_DEPTH),  # depth only with fuser.depth_mask
        (m.TOPIC_OCCLUSION, m.TOPIC_DEPTH_MASK),
        start_rank=0,
        stop_rank=3,
        essential=True,
    ),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
SOURCE: str = next(s.name for s in STAGES if not s.inputs)  # the stage frames come from
ESSENTIAL: tuple[str, ...] = tuple(s.name for s in STAGES if s.essential)


ROLES: tuple[str, ...] = ("all", "bedside", "server")


def for_role(role: str) -> tuple[str, ...]:
    """The stages ``run --role role`` starts (KeyError: no such role)."""
    if role not in ROLES:
        raise KeyError(role)
    return tuple(s.name for s in STAGES if role in s.roles)


def start_order(names: tuple[str, ...] = NAMES) -> tuple[str, ...]:
    """``names`` in start-up order: every consumer is up before what feeds it."""
    return tuple(sorted(names, key=lambda n: BY_NAME[n].start_rank))


def stop_order(names: tuple[str, ...] = NAMES) -> tuple[str, ...]:
    """``names`` in shutdown order: producers stop before their consumers."""
    return tuple(sorted(names, key=lambda n: BY_NAME[n].stop_rank))


def result_topics() -> tuple[str, ...]:
    """Topics published by a stage that consumes something (what the monitor times)."""
    return tuple(t for s in STAGES if s.inputs for t in s.outputs)


def module_of(name: str) -> str:
    """The module whose ``run(rt)`` is worker ``name``'s main loop (KeyError: no such stage)."""
    return BY_NAME[name].module


def edges() -> list[tuple[str, str, str]]:
    """Every (producer, topic, consumer) edge of the graph, in stage order."""
    out: list[tuple[str, str, str]] = []
    for producer in STAGES:
        for topic in producer.outputs:
            out.extend((producer.name, topic, c.name) for c in STAGES if topic in c.inputs)
    return out


def diagram() -> str:
    """The stage graph as text, one edge per line (README.md and DESIGN.md quote it)."""
    lines = [f"{p:>8} ──{t}──▶ {c}" for p, t, c in edges()]
    sinks = [t for s in STAGES for t in s.outputs if not any(t in c.inputs for c in STAGES)]
    for s in STAGES:
        lines.extend(
            f"{s.name:>8} ──{t}──▶ monitoring apps, viewer, recorder" for t in s.outputs if t in sinks
        )
    return "\n".join(lines)
