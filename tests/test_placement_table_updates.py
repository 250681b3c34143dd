"""The submitter's worker table (submitter/view.py) under full tables, deltas and loads."""

from protocol import Load, Workers

from tests.placement_helpers import ME, info, view_of


# ---- apply / apply_load ------------------------------------------------------------------

def test_a_full_table_makes_missing_workers_unconfirmed_not_gone():
    view = view_of(info("a"), info("b"), info("c"))
    gone, confirmed = view.apply(Workers(full=True, workers=(info("b", seq=2), info("d"))), now=5.0)
    assert (gone, confirmed) == ([], [])
    assert set(view.rows) == {"b", "d"}
    assert set(view.unconfirmed) == {"a", "c"}
    assert view.pick_worker(below=9.0) in {"b", "d"}


def test_a_full_table_in_pieces_counts_only_once_whole():
    view = view_of(info("a"), info("b"), info("c"))
    assert view.apply(Workers(full=True, more=True, workers=(info("a", seq=2),)), now=5.0) == ([], [])
    assert set(view.rows) == {"a", "b", "c"} and not view.unconfirmed   # nothing taken yet
    view.apply(Workers(full=True, workers=(info("b", seq=2), info("d"))), now=5.0)
    assert set(view.rows) == {"a", "b", "d"} and set(view.unconfirmed) == {"c"}
    assert view.rows["a"].seq == 2 and view.partial == []


def test_an_unconfirmed_worker_that_reappears_is_confirmed():
    view = view_of(info("a"), info("b"))
    view.suspect_all()
    gone, confirmed = view.apply(Workers(full=True, workers=(info("b", seq=3),)), now=1.5)
    assert confirmed == ["b"] and "b" in view.rows and "a" in view.unconfirmed


def test_an_unconfirmed_worker_expires_after_the_window():
    view = view_of(info("a"))
    view.suspect("a", now=10.0)
    assert view.next_expiry(3.0) == 13.0
    assert view.expire(13.0, 3.0) == []
    assert view.expire(13.1, 3.0) == ["a"]
    assert view.unconfirmed == {}


def test_a_delta_updates_only_its_rows_and_keeps_the_others():
    view = view_of(info("a", queue=0), info("b", queue=0))
    gone, _ = view.apply(Workers(full=False, workers=(info("a", queue=3, seq=2),)))
    assert gone == []
    assert view.rows["a"].queue == 3 and view.rows["b"].queue == 0


def test_a_delta_adds_a_new_worker():
    view = view_of(info("a"))
    view.apply(Workers(full=False, workers=(info("b", name="bee"),)))
    assert set(view.rows) == {"a", "b"}
    assert view.name("b") == "bee"


def test_a_delta_removes_gone_ids_and_returns_them_sorted():
    view = view_of(info("a"), info("b"), info("c"))
    gone, _ = view.apply(Workers(full=False, workers=(), gone=("c", "a")))
    assert gone == ["a", "c"]
    assert set(view.rows) == {"b"}


def test_a_gone_id_the_view_never_had_is_harmless():
    view = view_of(info("a"))
    view.apply(Workers(full=False, workers=(), gone=("zz",)))
    assert set(view.rows) == {"a"}


def test_a_gone_workers_name_is_still_known_for_messages():
    view = view_of(info("id-1", name="host-a"))
    view.apply(Workers(full=False, workers=(), gone=("id-1",)))
    assert view.name("id-1") == "host-a"


def test_a_stale_delta_does_not_overwrite_a_newer_row():
    view = view_of(info("a", queue=5, seq=10))
    view.apply(Workers(full=False, workers=(info("a", queue=0, seq=9),)))
    assert view.rows["a"].queue == 5 and view.rows["a"].seq == 10


def test_a_stale_row_in_a_full_table_does_not_overwrite_a_newer_one():
    view = view_of(info("a", queue=5, seq=10))
    view.apply(Workers(full=True, workers=(info("a", queue=0, seq=3),)))
    assert view.rows["a"].queue == 5


def test_a_newer_delta_overwrites_the_row():
    view = view_of(info("a", queue=5, seq=10))
    view.apply(Workers(full=False, workers=(info("a", queue=1, seq=11, seen=7),)))
    assert (view.rows["a"].queue, view.rows["a"].seen) == (1, 7)


def test_a_load_from_a_result_updates_the_row_with_my_seen_count():
    view = view_of(info("a", slots=2, queue=4, running=2, seq=3, seen=1))
    view.apply_load("a", Load(queue=1, running=1, slots=2, seq=4, seen=((ME, 9), ("other", 50))))
    row = view.rows["a"]
    assert (row.queue, row.running, row.slots, row.seq, row.seen) == (1, 1, 2, 4, 9)


def test_a_stale_load_report_does_not_overwrite_a_newer_row():
    view = view_of(info("a", queue=4, seq=8))
    view.apply_load("a", Load(queue=0, running=0, slots=1, seq=8))
    view.apply_load("a", Load(queue=0, running=0, slots=1, seq=2))
    assert view.rows["a"].queue == 4 and view.rows["a"].seq == 8


def test_a_load_for_a_worker_not_in_the_table_is_ignored():
    view = view_of(info("a"))
    view.apply_load("ghost", Load(queue=0, running=0, slots=1, seq=99))
    assert set(view.rows) == {"a"}


def test_a_load_without_my_id_means_the_worker_holds_none_of_my_jobs():
    view = view_of(info("a", slots=1, seq=1, seen=5))
    view.sent("a", 6)
    view.apply_load("a", Load(queue=0, running=0, slots=1, seq=2, seen=(("other", 3),)))
    assert view.rows["a"].seen == 0
    assert view.cost("a") == 1   # job 6 is still on its way
