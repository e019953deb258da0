"""The outbox, alert states and alert history in the store, on SQLite and PostgreSQL: exact
round trips, idempotent enqueue, due selection, marks only on pending rows, restarts, expiry."""

from __future__ import annotations

import math

import pytest

from alerts.model import AlertState, Notification, Transition
from alerts.outbox import notification_from_json, notification_to_json
from inferwatch.stores import Stores
from storage.retention import Retention

T0 = 1_700_000_000.0


def note(i: int, *, receiver: str = "webhook", created_at: float = T0, **kw) -> Notification:
    fields = dict(
        id=f"n{i:03d}",
        receiver=receiver,
        kind="trigger",
        fingerprint=f"fp{i}",
        rule="QueueDepthHigh",
        labels={"alertname": "QueueDepthHigh", "severity": "critical", "backend": "vllm-a"},
        annotations={"summary": "vllm-a queue depth 120 > 100"},
        value=120.0,
        starts_at=created_at - 60.0,
        ends_at=None,
        created_at=created_at,
        dashboard_url="http://127.0.0.1:8000/alerts",
    )
    fields.update(kw)
    return Notification(**fields)  # type: ignore[arg-type]


def state(fp: str, st: str = "firing", **kw) -> AlertState:
    fields = dict(
        fingerprint=fp,
        rule="QueueDepthHigh",
        labels={"alertname": "QueueDepthHigh", "backend": fp},
        state=st,
        value=101.5,
        active_since=T0 - 120,
        fired_at=T0 - 60,
        resolved_at=None,
        last_true=T0,
        annotations={"summary": "deep queue"},
    )
    fields.update(kw)
    return AlertState(**fields)  # type: ignore[arg-type]


def transition(fp: str, old: str, new: str, ts: float) -> Transition:
    return Transition(
        fingerprint=fp,
        rule="R",
        labels={"alertname": "R", "backend": fp},
        annotations={"summary": "s"},
        old=old,  # type: ignore[arg-type]
        new=new,  # type: ignore[arg-type]
        ts=ts,
        value=1.5,
        active_since=ts - 10,
        fired_at=ts if new == "firing" else None,
    )


# --- serialisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, 0.0, -2.5, math.inf, -math.inf],
    ids=["no value", "zero", "negative", "plus infinity", "minus infinity"],
)
def test_notification_json_round_trip_is_exact(value: float | None) -> None:
    n = note(1, value=value, labels={"backend": "ü-ñ", "severity": "page"}, ends_at=T0 + 5)
    assert notification_from_json(notification_to_json(n)) == n


def test_nan_value_survives_as_nan() -> None:
    back = notification_from_json(notification_to_json(note(1, value=math.nan)))
    assert back.value is not None and math.isnan(back.value)


# --- outbox ----------------------------------------------------------------------------------------


def test_enqueue_is_idempotent_and_due_reads_back_exactly(store: Stores) -> None:
    notes = [note(2, created_at=T0 + 1), note(1), note(3, created_at=T0 + 5, kind="resolve", ends_at=T0 + 5)]
    store.alerts.enqueue(notes)
    store.alerts.enqueue([note(1, annotations={"summary": "changed"})])  # same id: left as it is
    assert store.alerts.pending_count() == 3
    due = store.alerts.due(now=T0 + 1, limit=10)
    assert [i.notification for i in due] == [notes[1], notes[0]]  # oldest first, not yet n003
    first = due[0]
    assert (first.status, first.attempts, first.next_attempt_at, first.last_error) == ("pending", 0, T0, None)
    assert [i.id for i in store.alerts.due(now=T0 + 5, limit=2)] == ["n001", "n002"]
    assert store.alerts.next_due_at() == T0
    store.alerts.enqueue([])


def test_marks_move_items_out_of_the_queue(store: Stores) -> None:
    store.alerts.enqueue([note(1), note(2), note(3)])
    assert store.alerts.mark_retry("n001", now=T0 + 1, next_attempt_at=T0 + 3, error="ConnectError")
    assert store.alerts.mark_delivered("n002", now=T0 + 2, latency=2.0)
    assert store.alerts.mark_dead("n003", now=T0 + 2, error="HTTP 400: bad payload")
    assert [i.id for i in store.alerts.due(now=T0 + 2.9, limit=10)] == []
    (retry,) = store.alerts.due(now=T0 + 3, limit=10)
    assert (retry.attempts, retry.next_attempt_at, retry.updated_at, retry.last_error) == (
        1, T0 + 3, T0 + 1, "ConnectError",
    )
    assert store.alerts.pending_count() == 1 and store.alerts.next_due_at() == T0 + 3

    delivered = store.alerts.get_item("n002")
    assert delivered is not None
    assert (delivered.status, delivered.attempts, delivered.delivered_at, delivered.latency) == (
        "delivered", 1, T0 + 2, 2.0,
    )
    dead = store.alerts.get_item("n003")
    assert dead is not None and (dead.status, dead.last_error) == ("dead", "HTTP 400: bad payload")
    # a finished item is never touched again
    assert not store.alerts.mark_retry("n002", now=T0 + 9, next_attempt_at=T0 + 10, error="late")
    assert not store.alerts.mark_delivered("n003", now=T0 + 9, latency=9.0)
    assert not store.alerts.mark_dead("nope", now=T0 + 9, error="unknown")
    assert store.alerts.get_item("n002") == delivered and store.alerts.get_item("nope") is None

    assert store.alerts.mark_dead("n001", now=T0 + 4, error="expired", attempted=False)
    gone = store.alerts.get_item("n001")
    assert gone is not None and (gone.status, gone.attempts) == ("dead", 1)
    assert store.alerts.pending_count() == 0 and store.alerts.next_due_at() is None


def test_a_new_repeat_supersedes_the_pending_unsent_repeats_of_its_alert(store: Stores) -> None:
    """A receiver down for a while holds one current repeat per alert, not one per interval:
    untried pending repeats of the same (receiver, alert) are marked dead when a newer one is
    committed; a repeat awaiting its retry, a trigger, and other receivers' or alerts' items stay."""
    a = store.alerts
    a.enqueue([note(1, kind="trigger", fingerprint="f"), note(2, kind="repeat", fingerprint="f"),
               note(3, kind="repeat", fingerprint="f", created_at=T0 + 60),
               note(4, kind="repeat", fingerprint="f", receiver="slack"),
               note(5, kind="repeat", fingerprint="g")])
    assert a.mark_retry("n002", now=T0 + 1, next_attempt_at=T0 + 300, error="ConnectError")
    a.commit_evaluation({}, [], [note(6, kind="repeat", fingerprint="f", created_at=T0 + 120)])
    status = {i: a.get_item(f"n00{i}").status for i in range(1, 7)}  # type: ignore[union-attr]
    assert status == {1: "pending", 2: "pending", 3: "dead", 4: "pending", 5: "pending", 6: "pending"}
    dead = a.get_item("n003")
    assert dead is not None and dead.last_error == "superseded by a newer repeat" and dead.updated_at == T0 + 120


def test_defer_only_moves_pending_items_later(store: Stores) -> None:
    store.alerts.enqueue([note(1), note(2), note(3, created_at=T0 + 100)])
    store.alerts.mark_delivered("n002", now=T0, latency=0.0)
    assert store.alerts.defer(["n001", "n002", "n003", "n001"], until=T0 + 30) == 1
    assert [(i.id, i.next_attempt_at, i.attempts) for i in store.alerts.due(T0 + 1000, 10)] == [
        ("n001", T0 + 30, 0),
        ("n003", T0 + 100, 0),
    ]


def test_history_lists_newest_first(store: Stores) -> None:
    store.alerts.enqueue([note(1), note(2, created_at=T0 + 1, receiver="slack"), note(3, created_at=T0 + 2)])
    store.alerts.mark_delivered("n001", now=T0 + 1, latency=1.0)
    assert [(i.id, i.status) for i in store.alerts.history(since=T0 - 1)] == [
        ("n003", "pending"), ("n002", "pending"), ("n001", "delivered"),
    ]
    assert [i.id for i in store.alerts.history(since=T0)] == ["n003", "n002"]
    assert [i.id for i in store.alerts.history(since=0, receiver="slack")] == ["n002"]
    assert [i.id for i in store.alerts.history(since=0, limit=1)] == ["n003"]


def test_many_notifications_in_one_batch(store: Stores) -> None:
    store.alerts.enqueue([note(i, created_at=T0 + i) for i in range(1200)])
    assert store.alerts.pending_count() == 1200
    assert store.alerts.defer([f"n{i:03d}" for i in range(1200)], until=T0 + 5000) == 1200
    assert store.alerts.due(T0 + 4999, 5000) == []


# --- alert states and history ----------------------------------------------------------------------


def test_alert_states_replace_the_stored_set(store: Stores) -> None:
    assert store.alerts.load_alert_states() == {}
    first = {"a": state("a"), "b": state("b", "pending", fired_at=None, value=math.inf)}
    store.alerts.save_alert_states(first)
    assert store.alerts.load_alert_states() == first
    second = {"b": state("b", "firing"), "c": state("c", "resolved", resolved_at=T0 + 5, value=None)}
    store.alerts.save_alert_states(second)  # a gone, b updated, c new
    assert store.alerts.load_alert_states() == second
    store.alerts.save_alert_states({f"x{i}": state(f"x{i}") for i in range(700)})
    assert len(store.alerts.load_alert_states()) == 700
    store.alerts.save_alert_states({})
    assert store.alerts.load_alert_states() == {}


def test_nan_alert_value_is_stored_as_none(store: Stores) -> None:
    store.alerts.save_alert_states({"a": state("a", value=math.nan)})
    assert store.alerts.load_alert_states()["a"].value is None


def test_alert_history_filters_by_state_and_time(store: Stores) -> None:
    store.alerts.record_transitions([])
    store.alerts.record_transitions(
        [
            transition("a", "inactive", "pending", T0),
            transition("a", "pending", "firing", T0 + 60),
            transition("b", "pending", "firing", T0 + 60),
        ]
    )
    store.alerts.record_transitions([transition("a", "firing", "resolved", T0 + 120)])
    everything = store.alerts.alert_history()
    assert [(x.fingerprint, x.new, x.ts) for x in everything] == [
        ("a", "resolved", T0 + 120),
        ("b", "firing", T0 + 60),
        ("a", "firing", T0 + 60),
        ("a", "pending", T0),
    ]
    assert everything[-1] == transition("a", "inactive", "pending", T0)
    assert [x.fingerprint for x in store.alerts.alert_history(state="firing")] == ["b", "a"]
    assert [x.new for x in store.alerts.alert_history(since=T0 + 60)] == ["resolved"]
    assert [x.new for x in store.alerts.alert_history(state="firing", since=T0, limit=1)] == ["firing"]


# --- durability and retention ----------------------------------------------------------------------


def test_restart_keeps_pending_items_and_alert_states(store_url: str) -> None:
    first = Stores.open(store_url)
    first.migrate()
    first.alerts.enqueue([note(1), note(2)])
    first.alerts.mark_retry("n001", now=T0 + 1, next_attempt_at=T0 + 2, error="timeout")
    first.alerts.save_alert_states({"a": state("a")})
    first.alerts.record_transitions([transition("a", "pending", "firing", T0)])
    first.close()

    restarted = Stores.open(store_url)
    try:
        restarted.migrate()
        assert restarted.alerts.pending_count() == 2
        assert [(i.id, i.attempts) for i in restarted.alerts.due(T0 + 2, 10)] == [("n001", 1), ("n002", 0)]
        assert restarted.alerts.load_alert_states() == {"a": state("a")}
        assert len(restarted.alerts.alert_history()) == 1
    finally:
        restarted.close()


def test_maintain_expires_finished_items_but_never_pending_ones(store_url: str) -> None:
    s = Stores.open(store_url, retention=Retention(raw_seconds=60, rollup_seconds=3600, rollup_step=60))
    try:
        s.migrate()
        s.alerts.enqueue([note(1), note(2), note(3), note(4, created_at=T0 + 3000)])
        s.alerts.mark_delivered("n001", now=T0 + 1, latency=1.0)
        s.alerts.mark_dead("n002", now=T0 + 1, error="HTTP 400")
        s.alerts.mark_delivered("n004", now=T0 + 3001, latency=1.0)
        s.alerts.record_transitions([transition("a", "pending", "firing", T0), transition("a", "firing", "resolved", T0 + 3000)])
        s.maintain(now=T0 + 3601.5)
        assert [i.id for i in s.alerts.history(since=0)] == ["n004", "n003"]  # n003 pending, kept
        assert [x.ts for x in s.alerts.alert_history()] == [T0 + 3000]
    finally:
        s.close()
