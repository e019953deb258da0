"""The alert store: the durable notification outbox and the alert engine's memory, over the
shared ``storage.database.Database``; the tables live in ``storage.database.metadata`` and are
created by migration ``0003``:

* ``outbox``: one row per ``Notification``, written *before* any send. ``status`` goes
  ``pending`` → ``delivered`` or ``pending`` → ``dead``; ``attempts``, ``next_attempt_at`` and
  ``last_error`` record the retries. The notification itself is JSON text.
* ``alert_states``: the evaluator's ``AlertState`` per fingerprint (replaced as a whole by
  ``save_alert_states``), so that a restart neither re-pages nor forgets a firing alert.
* ``alert_history``: append-only ``Transition`` log behind ``/api/v1/alerts?state=&since=``.

Delivered and dead outbox rows and history rows are expired by ``AlertStore.expire`` (after
``Retention.rollup_seconds``); pending rows are never expired there (the dispatcher gives up on
them after its ``max_age``). ``last_sent`` reads back the last notification per (alert, receiver),
which the engine loads at start so that repeats survive a restart.

Every ``mark_*`` call is one UPDATE in its own transaction and only touches a *pending* row, so a
late or repeated mark never resurrects a delivered or dead item.

>>> from storage.database import Database
>>> db = Database("sqlite:///:memory:"); db.migrate(); store = AlertStore(db)
>>> n = Notification(id="n1", receiver="webhook", kind="trigger", fingerprint="f", rule="R",
...                  labels={"severity": "page"}, annotations={}, value=3.0, starts_at=10.0,
...                  ends_at=None, created_at=10.0)
>>> store.enqueue([n]); store.enqueue([n])  # idempotent on id
>>> [item.id for item in store.due(now=10.0, limit=10)]
['n1']
>>> store.mark_delivered("n1", now=10.5, latency=0.5)
True
>>> store.pending_count()
0
>>> db.close()
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa

from alerts.model import AlertState, Notification, State, Transition
from alerts.routing import Sent
from core.numbers import nan_to_none
from storage.codec import enc
from storage.database import IN_CHUNK, Database, metadata

__all__ = [
    "AlertStore",
    "OutboxItem",
    "OutboxStatus",
    "notification_from_json",
    "notification_to_json",
]

OutboxStatus = Literal["pending", "delivered", "dead"]


def _define_tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    """``outbox``, ``alert_states`` and ``alert_history`` (mirrors ``0003``)."""
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("notification", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("latency", sa.Double, nullable=True),
        sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_outbox_created_at", "created_at"),
        sa.Index("ix_outbox_updated_at", "updated_at"),
    )
    states = sa.Table(
        "alert_states",
        metadata,
        sa.Column("fingerprint", sa.Text, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("active_since", sa.Double, nullable=True),
        sa.Column("fired_at", sa.Double, nullable=True),
        sa.Column("resolved_at", sa.Double, nullable=True),
        sa.Column("last_true", sa.Double, nullable=True),
    )
    history = sa.Table(
        "alert_history",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("old_state", sa.Text, nullable=False),
        sa.Column("new_state", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("active_since", sa.Double, nullable=True),
        sa.Column("fired_at", sa.Double, nullable=True),
        sa.Index("ix_alert_history_ts", "ts"),
        sa.Index("ix_alert_history_new_state_ts", "new_state", "ts"),
        sa.Index("ix_alert_history_fingerprint_ts", "fingerprint", "ts"),
    )
    return outbox, states, history


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row: the notification and where its delivery stands."""

    notification: Notification
    status: OutboxStatus
    attempts: int
    next_attempt_at: float
    updated_at: float
    last_error: str | None = None
    delivered_at: float | None = None
    latency: float | None = None  # created_at → delivered, seconds

    @property
    def id(self) -> str:
        return self.notification.id

    @property
    def receiver(self) -> str:
        return self.notification.receiver


outbox, alert_states, alert_history = _define_tables()


class AlertStore:
    """Outbox, alert states and alert history."""

    outbox_table = outbox
    alert_states_table = alert_states
    alert_history_table = alert_history

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- outbox --------------------------------------------------------------------------------

    def enqueue(self, notifications: Sequence[Notification]) -> None:
        """Store notifications as pending, due at their ``created_at``; one transaction.
        An ``id`` already in the outbox is left as it is (idempotent)."""
        if not notifications:
            return
        with self.db.engine.begin() as conn:
            self._enqueue(conn, notifications)

    def _enqueue(self, conn: sa.Connection, notifications: Sequence[Notification]) -> None:
        if not notifications:
            return
        self._supersede(conn, [n for n in notifications if n.kind == "repeat"])
        rows = list({n.id: _outbox_row(n) for n in notifications}.values())
        ins = self.db.upsert(self.outbox_table)
        conn.execute(ins.on_conflict_do_nothing(index_elements=["id"]), rows)

    def _supersede(self, conn: sa.Connection, repeats: Sequence[Notification]) -> None:
        """A new repeat replaces the same receiver's still-pending repeats of that alert (a
        receiver down for an hour then gets one current repeat, not sixty stale ones in a row):
        they are marked dead, ``superseded``. Only the first attempt is skipped: an item already
        tried and awaiting its retry is left alone (it may be in flight)."""
        if not repeats:
            return
        t = self.outbox_table
        now = max(n.created_at for n in repeats)
        for n in repeats:
            conn.execute(sa.update(t).where(
                t.c.status == "pending", t.c.kind == "repeat", t.c.attempts == 0,
                t.c.receiver == n.receiver, t.c.fingerprint == n.fingerprint, t.c.id != n.id,
            ).values(status="dead", last_error="superseded by a newer repeat", updated_at=now))

    def commit_evaluation(self, states: Mapping[str, AlertState], transitions: Sequence[Transition],
                          notifications: Sequence[Notification]) -> None:
        """One evaluation's outcome in ONE transaction: the new alert states, their history and
        the notifications they cause. A crash leaves either all of it or none (then the next
        evaluation, from the old states, decides the same transitions again)."""
        with self.db.engine.begin() as conn:
            self._save_states(conn, states)
            if transitions:
                conn.execute(self.alert_history_table.insert(), [_history_row(x) for x in transitions])
            self._enqueue(conn, notifications)

    def _sendable(self, skip: Collection[str]) -> list[sa.ColumnElement[bool]]:
        """Pending, not of a receiver in ``skip``, and not behind an older pending item of the
        same receiver and alert: a resolve waits for its trigger, even one waiting to be retried
        (after an outage the trigger's backoff must not let its resolve overtake it)."""
        t = self.outbox_table
        older = t.alias("older")
        blocked = sa.exists().where(
            older.c.status == "pending",
            older.c.receiver == t.c.receiver,
            older.c.fingerprint == t.c.fingerprint,
            sa.or_(older.c.created_at < t.c.created_at,
                   sa.and_(older.c.created_at == t.c.created_at, older.c.id < t.c.id)),
        )
        where = [t.c.status == "pending", ~blocked]
        if skip:
            where.append(t.c.receiver.not_in(list(skip)))
        return where

    def due(self, now: float, limit: int = 100, skip: Collection[str] = ()) -> list[OutboxItem]:
        """Pending items with ``next_attempt_at <= now``, oldest first (``created_at``, ``id``),
        each only when no older item of the same receiver and alert is pending (so a receiver
        gets an alert's notifications in order); none of the receivers in ``skip``."""
        t = self.outbox_table
        q = (
            sa.select(t)
            .where(t.c.next_attempt_at <= now, *self._sendable(skip))
            .order_by(t.c.created_at, t.c.id)
            .limit(limit)
        )
        with self.db.engine.connect() as conn:
            return [_item_from_row(r._mapping) for r in conn.execute(q)]

    def next_due_at(self, skip: Collection[str] = ()) -> float | None:
        """The earliest ``next_attempt_at`` of an item ``due`` could return, or None."""
        t = self.outbox_table
        q = sa.select(sa.func.min(t.c.next_attempt_at)).where(*self._sendable(skip))
        with self.db.engine.connect() as conn:
            x = conn.execute(q).scalar()
        return None if x is None else float(x)

    def get_item(self, id: str) -> OutboxItem | None:
        t = self.outbox_table
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == id)).first()
        return None if row is None else _item_from_row(row._mapping)

    def mark_delivered(self, id: str, now: float, latency: float | None) -> bool:
        """Pending → delivered (one attempt more). Its own transaction, nothing else in it.
        False when the item was not pending (unknown, already delivered, or dead)."""
        return self._update_pending(
            id,
            status="delivered",
            attempts=self.outbox_table.c.attempts + 1,
            updated_at=float(now),
            delivered_at=float(now),
            latency=nan_to_none(latency),
            last_error=None,
        )

    def mark_retry(self, id: str, now: float, next_attempt_at: float, error: str | None) -> bool:
        """Record a failed attempt; the item stays pending until ``next_attempt_at``."""
        return self._update_pending(
            id,
            attempts=self.outbox_table.c.attempts + 1,
            updated_at=float(now),
            next_attempt_at=float(next_attempt_at),
            last_error=error,
        )

    def mark_dead(self, id: str, now: float, error: str | None, *, attempted: bool = True) -> bool:
        """Pending → dead (given up); ``attempted``: whether this verdict followed a send."""
        t = self.outbox_table
        return self._update_pending(
            id,
            status="dead",
            attempts=t.c.attempts + 1 if attempted else t.c.attempts,
            updated_at=float(now),
            last_error=error,
        )

    def defer(self, ids: Iterable[str], until: float) -> int:
        """Push pending items to ``next_attempt_at >= until`` without counting an attempt (a
        receiver that is down or rate-limiting is not tried again for the items behind the
        one that failed). Returns how many rows moved."""
        t = self.outbox_table
        moved = 0
        id_list = list(dict.fromkeys(ids))
        with self.db.engine.begin() as conn:
            for i in range(0, len(id_list), IN_CHUNK):
                res = conn.execute(
                    sa.update(t)
                    .where(
                        t.c.id.in_(id_list[i : i + IN_CHUNK]),
                        t.c.status == "pending",
                        t.c.next_attempt_at < until,
                    )
                    .values(next_attempt_at=float(until))
                )
                moved += res.rowcount
        return moved

    def pending_count(self) -> int:
        t = self.outbox_table
        q = sa.select(sa.func.count()).select_from(t).where(t.c.status == "pending")
        with self.db.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def history(
        self, since: float, *, receiver: str | None = None, limit: int = 1000
    ) -> list[OutboxItem]:
        """Items created after ``since`` (any status), newest first."""
        t = self.outbox_table
        q = sa.select(t).where(t.c.created_at > since)
        if receiver is not None:
            q = q.where(t.c.receiver == receiver)
        q = q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        with self.db.engine.connect() as conn:
            return [_item_from_row(r._mapping) for r in conn.execute(q)]

    def _update_pending(self, id: str, **values: Any) -> bool:
        t = self.outbox_table
        with self.db.engine.begin() as conn:
            res = conn.execute(
                sa.update(t).where(t.c.id == id, t.c.status == "pending").values(**values)
            )
        return res.rowcount == 1

    # --- alert states --------------------------------------------------------------------------

    def save_alert_states(self, states: Mapping[str, AlertState]) -> None:
        """Replace the stored states by ``states`` (keyed by fingerprint): upsert every one,
        delete every other; one transaction."""
        with self.db.engine.begin() as conn:
            self._save_states(conn, states)

    def _save_states(self, conn: sa.Connection, states: Mapping[str, AlertState]) -> None:
        t = self.alert_states_table
        rows = [_state_row(fp, s) for fp, s in states.items()]
        stored = set(conn.execute(sa.select(t.c.fingerprint)).scalars())
        gone = sorted(stored - states.keys())
        for i in range(0, len(gone), IN_CHUNK):
            conn.execute(sa.delete(t).where(t.c.fingerprint.in_(gone[i : i + IN_CHUNK])))
        if rows:
            ins = self.db.upsert(t)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["fingerprint"],
                    set_={k: getattr(ins.excluded, k) for k in rows[0] if k != "fingerprint"},
                ),
                rows,
            )

    def load_alert_states(self) -> dict[str, AlertState]:
        t = self.alert_states_table
        with self.db.engine.connect() as conn:
            return {
                r.fingerprint: _state_from_row(r._mapping)
                for r in conn.execute(sa.select(t).order_by(t.c.fingerprint))
            }

    # --- alert history -------------------------------------------------------------------------

    def record_transitions(self, transitions: Sequence[Transition]) -> None:
        """Append transitions to the alert history (one transaction)."""
        if not transitions:
            return
        with self.db.engine.begin() as conn:
            conn.execute(self.alert_history_table.insert(), [_history_row(x) for x in transitions])

    def alert_history(
        self, state: State | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Transition]:
        """Transitions newest first; ``state`` keeps those *into* that state, ``since`` those
        with ``ts > since``."""
        t = self.alert_history_table
        q = sa.select(t)
        if state is not None:
            q = q.where(t.c.new_state == state)
        if since is not None:
            q = q.where(t.c.ts > since)
        q = q.order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit)
        with self.db.engine.connect() as conn:
            return [_transition_from_row(r._mapping) for r in conn.execute(q)]

    # --- retention -----------------------------------------------------------------------------

    def expire(self, before: float) -> None:
        """Delete finished outbox rows and history rows last touched at or before ``before``."""
        o, h = self.outbox_table, self.alert_history_table
        with self.db.engine.begin() as conn:
            conn.execute(sa.delete(o).where(o.c.status != "pending", o.c.updated_at <= before))
            conn.execute(sa.delete(h).where(h.c.ts <= before))

    def last_sent(self, fingerprints: Iterable[str]) -> dict[tuple[str, str], Sent]:
        """The latest outbox notification (any status) per (fingerprint, receiver) of these
        alerts: what the engine's repeat and resolve decisions start from after a restart."""
        t = self.outbox_table
        fps = sorted(set(fingerprints))
        out: dict[tuple[str, str], Sent] = {}
        with self.db.engine.connect() as conn:
            for i in range(0, len(fps), IN_CHUNK):
                q = (sa.select(t.c.fingerprint, t.c.receiver, t.c.kind, t.c.created_at)
                     .where(t.c.fingerprint.in_(fps[i : i + IN_CHUNK]))
                     .order_by(t.c.created_at, t.c.id))
                for fp, receiver, kind, created_at in conn.execute(q):
                    out[(fp, receiver)] = Sent(kind, float(created_at))
        return out


# --- row conversion ------------------------------------------------------------------------------


def _enc(x: float | None) -> float | str | None:
    return None if x is None else enc(x)


def _dec(x: Any) -> float | None:
    return None if x is None else float(x)  # float("NaN"), float("+Inf") parse


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _labels(text: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(text).items()}


def notification_to_json(n: Notification) -> str:
    """The notification as compact JSON text (what the ``notification`` column holds)."""
    return _dumps(
        {
            "id": n.id,
            "receiver": n.receiver,
            "kind": n.kind,
            "fingerprint": n.fingerprint,
            "rule": n.rule,
            "labels": dict(n.labels),
            "annotations": dict(n.annotations),
            "value": _enc(n.value),
            "starts_at": _enc(n.starts_at),
            "ends_at": _enc(n.ends_at),
            "created_at": _enc(n.created_at),
            "dashboard_url": n.dashboard_url,
            "group_key": n.group_key,
            "group_labels": dict(n.group_labels),
            "unit": n.unit,
            "group_firing": n.group_firing,
        }
    )


def notification_from_json(text: str) -> Notification:
    d = json.loads(text)
    return Notification(
        id=d["id"],
        receiver=d["receiver"],
        kind=d["kind"],
        fingerprint=d["fingerprint"],
        rule=d["rule"],
        labels={str(k): str(v) for k, v in d["labels"].items()},
        annotations={str(k): str(v) for k, v in d["annotations"].items()},
        value=_dec(d["value"]),
        starts_at=float(d["starts_at"]),
        ends_at=_dec(d["ends_at"]),
        created_at=float(d["created_at"]),
        dashboard_url=d.get("dashboard_url"),
        group_key=str(d.get("group_key", "")),  # rows written before grouping have none
        group_labels={str(k): str(v) for k, v in d.get("group_labels", {}).items()},
        unit=str(d.get("unit", "")),
        group_firing=int(d.get("group_firing", 0)),
    )


def _outbox_row(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "receiver": n.receiver,
        "kind": n.kind,
        "fingerprint": n.fingerprint,
        "notification": notification_to_json(n),
        "created_at": float(n.created_at),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": float(n.created_at),
        "updated_at": float(n.created_at),
        "last_error": None,
        "delivered_at": None,
        "latency": None,
    }


def _item_from_row(m: Any) -> OutboxItem:
    return OutboxItem(
        notification=notification_from_json(m["notification"]),
        status=cast(OutboxStatus, m["status"]),
        attempts=int(m["attempts"]),
        next_attempt_at=float(m["next_attempt_at"]),
        updated_at=float(m["updated_at"]),
        last_error=m["last_error"],
        delivered_at=_dec(m["delivered_at"]),
        latency=_dec(m["latency"]),
    )


def _state_row(fp: str, s: AlertState) -> dict[str, Any]:
    return {
        "fingerprint": fp,
        "rule": s.rule,
        "state": s.state,
        "labels": _dumps(dict(s.labels)),
        "annotations": _dumps(dict(s.annotations)),
        "value": nan_to_none(s.value),
        "active_since": nan_to_none(s.active_since),
        "fired_at": nan_to_none(s.fired_at),
        "resolved_at": nan_to_none(s.resolved_at),
        "last_true": nan_to_none(s.last_true),
    }


def _state_from_row(m: Any) -> AlertState:
    return AlertState(
        fingerprint=m["fingerprint"],
        rule=m["rule"],
        labels=_labels(m["labels"]),
        state=cast(State, m["state"]),
        value=_dec(m["value"]),
        active_since=_dec(m["active_since"]),
        fired_at=_dec(m["fired_at"]),
        resolved_at=_dec(m["resolved_at"]),
        last_true=_dec(m["last_true"]),
        annotations=_labels(m["annotations"]),
    )


def _history_row(x: Transition) -> dict[str, Any]:
    return {
        "ts": float(x.ts),
        "fingerprint": x.fingerprint,
        "rule": x.rule,
        "old_state": x.old,
        "new_state": x.new,
        "labels": _dumps(dict(x.labels)),
        "annotations": _dumps(dict(x.annotations)),
        "value": nan_to_none(x.value),
        "active_since": nan_to_none(x.active_since),
        "fired_at": nan_to_none(x.fired_at),
    }


def _transition_from_row(m: Any) -> Transition:
    return Transition(
        fingerprint=m["fingerprint"],
        rule=m["rule"],
        labels=_labels(m["labels"]),
        annotations=_labels(m["annotations"]),
        old=cast(State, m["old_state"]),
        new=cast(State, m["new_state"]),
        ts=float(m["ts"]),
        value=_dec(m["value"]),
        active_since=_dec(m["active_since"]),
        fired_at=_dec(m["fired_at"]),
    )
