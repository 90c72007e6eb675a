"""Group commit of heartbeats (services/nodes/ingest.py), on SQLite and PostgreSQL: heartbeats that
arrive together share one transaction, and every one of them still gets its own answer."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.db.base import utcnow
from services.errors import InvalidInput, NotAuthenticated, PermissionDenied
from services.nodes import heartbeat
from services.nodes import service as nodes
from services.nodes.ingest import HeartbeatWriter
from services.nodes.models import Node, NodeMetric
from services.nodes.tokens import new_token
from tests.support.people import demo_identity

SAMPLE = {"cpu_pct": 12.5, "ram_pct": 40.0, "disk_pct": 55.0, "net_in_mbps": 3.2, "net_out_mbps": 1.1}


def _register(uow, count: int) -> list[tuple[int, str]]:
    provider = demo_identity(uow, "demo:provider")
    out = []
    for i in range(count):
        spec = dict(name=f"ingest-{i}", region="eu-west", country="DE", vcpu=8, ram_gb=32, disk_gb=200)
        registered = nodes.register_node(uow, provider, spec)
        out.append((registered.node.id, registered.token))
    return out


def _samples(uow, node_ids) -> dict[int, int]:
    with uow:
        rows = uow.session.execute(
            select(NodeMetric.node_id, func.count())
            .where(NodeMetric.node_id.in_(node_ids))
            .group_by(NodeMetric.node_id)
        )
        return {nid: n for nid, n in rows}


def test_heartbeats_sent_together_are_all_stored_in_fewer_transactions(seeded_db, uow):
    registered = _register(uow, 6)
    writer = HeartbeatWriter()
    base = utcnow() - timedelta(minutes=1)

    async def send_all():
        sends = [
            writer.submit(token, {"ts": (base + timedelta(seconds=k)).isoformat(), "metrics": SAMPLE}, seeded_db)
            for k in range(5)
            for _nid, token in registered
        ]
        return await asyncio.gather(*sends)

    answers = asyncio.run(send_all())
    assert len(answers) == 30 and all(a.metrics_recorded and a.status == "online" for a in answers)
    assert sorted({a.node_id for a in answers}) == sorted(nid for nid, _ in registered)
    assert _samples(uow, [nid for nid, _ in registered]) == {nid: 5 for nid, _ in registered}
    assert writer.heartbeats == 30 and writer.batches < 30  # shared commits: the point of the writer


def test_each_heartbeat_in_a_batch_gets_its_own_answer(seeded_db, uow):
    (ok_id, ok), (retired_id, retired), (rotated_id, old) = _register(uow, 3)
    provider = demo_identity(uow, "demo:provider")
    new = nodes.rotate_token(uow, provider, rotated_id).token
    with uow:  # a node retired by other means than the service, so it still has its token: 403
        uow.session.get(Node, retired_id).status = "decommissioned"
        uow.commit()
    writer = HeartbeatWriter()
    ts = utcnow().replace(microsecond=0)

    async def send_all():
        bodies = {"ts": ts.isoformat(), "metrics": SAMPLE}
        tokens = [ok, retired, old, new_token(), new, ok]  # the last repeats the first sample time
        return await asyncio.gather(*(writer.submit(t, bodies, seeded_db) for t in tokens), return_exceptions=True)

    first, decommissioned, rotated_away, unknown, rotated_in, repeat = asyncio.run(send_all())
    assert first.node_id == ok_id and first.metrics_recorded
    assert isinstance(decommissioned, PermissionDenied)
    assert isinstance(rotated_away, NotAuthenticated) and isinstance(unknown, NotAuthenticated)
    assert rotated_in.node_id == rotated_id and rotated_in.metrics_recorded
    assert repeat.node_id == ok_id and not repeat.metrics_recorded  # stored once, as a lone retry would be
    assert _samples(uow, [ok_id, retired_id, rotated_id]) == {ok_id: 1, rotated_id: 1}


def test_a_heartbeat_the_database_refuses_does_not_fail_its_batch(seeded_db, uow):
    """A batch that fails as a whole is written again one heartbeat at a time: only the bad one fails."""
    registered = _register(uow, 4)
    accepted = [heartbeat.accept(token, {"metrics": SAMPLE}) for _nid, token in registered]
    # A sample time the column cannot store: the database layer raises for this heartbeat only.
    broken = replace(accepted[2], sample_ts="not a time")
    writer = HeartbeatWriter()

    async def send_all():
        loop = asyncio.get_running_loop()
        from services.nodes.ingest import _Waiting

        waiting = [_Waiting(seeded_db, a, loop, loop.create_future()) for a in [*accepted[:2], broken, accepted[3]]]
        writer._write(seeded_db, waiting)  # one batch, as the writer thread would take it
        return await asyncio.gather(*(w.future for w in waiting), return_exceptions=True)

    answers = asyncio.run(send_all())
    assert [type(a).__name__ for a in answers][:2] == ["HeartbeatOut", "HeartbeatOut"]
    assert isinstance(answers[2], Exception) and not isinstance(answers[2], InvalidInput)
    assert answers[3].metrics_recorded
    stored = _samples(uow, [nid for nid, _ in registered])
    assert stored == {registered[0][0]: 1, registered[1][0]: 1, registered[3][0]: 1}


def test_checks_that_need_no_database_answer_at_once(seeded_db):
    writer = HeartbeatWriter()

    async def send(token, body):
        return await writer.submit(token, body, seeded_db)

    with pytest.raises(NotAuthenticated):
        asyncio.run(send("cmn_short", {}))
    with pytest.raises(InvalidInput) as refused:
        asyncio.run(send(new_token(), {"metrics": {**SAMPLE, "cpu_pct": 101}}))
    assert "metrics.cpu_pct" in refused.value.errors
    assert writer.heartbeats == 0  # nothing reached the writer
