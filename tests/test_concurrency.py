"""Several processes on one SQLite file at once: no duplicates, no run claimed twice, no "database is locked"."""
import json
import multiprocessing
import random

import pytest

import pipeline_models as pm

PROCESSES = 6
spawn = multiprocessing.get_context("spawn")


def _run_workers(target, tmp_path, *args):
    """Start PROCESSES processes on `target(path, barrier, n, out, *args)` and return their JSON results."""
    path = str(tmp_path / "shared.db")
    barrier = spawn.Barrier(PROCESSES)
    procs = [spawn.Process(target=target, args=(path, barrier, n, str(tmp_path / f"out{n}.json"), *args))
             for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0, f"worker exited {proc.exitcode}"
    return [json.loads((tmp_path / f"out{n}.json").read_text()) for n in range(PROCESSES)]


def _discover_worker(path, barrier, n, out, ids):
    pm.init_db(path)
    random.Random(n).shuffle(ids)
    created, errors = [], []
    barrier.wait()
    for video_id in ids:
        try:
            video, was_created = pm.DiscoveredVideo.discover(video_id, title=f"seen by {n}", view_count=n)
            if was_created:
                created.append(video_id)
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as fh:
        json.dump({"created": created, "errors": errors}, fh)


def _claim_worker(path, barrier, n, out):
    pm.init_db(path)
    claimed, errors = [], []
    barrier.wait()
    while True:
        try:
            run = pm.PipelineRun.claim_next(f"worker-{n}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if run is None:
            break
        claimed.append(run.id)
        run.advance("awaiting_review")  # a write of its own between claims, like a real worker
    with open(out, "w") as fh:
        json.dump({"claimed": claimed, "errors": errors}, fh)


@pytest.mark.slow
def test_concurrent_discovery_never_duplicates_a_video(tmp_path):
    ids = [f"vid{i:04d}" for i in range(60)]
    pm.init_db(tmp_path / "shared.db").close()
    pm.db.initialize(None)

    results = _run_workers(_discover_worker, tmp_path, ids)

    assert [r["errors"] for r in results] == [[]] * PROCESSES
    created = [video_id for r in results for video_id in r["created"]]
    assert sorted(created) == ids  # each video created exactly once, by one process
    pm.init_db(tmp_path / "shared.db")
    assert pm.DiscoveredVideo.select().count() == len(ids)


@pytest.mark.slow
def test_concurrent_claims_take_every_run_exactly_once(tmp_path):
    pm.init_db(tmp_path / "shared.db")
    with pm.db.atomic():
        for i in range(150):
            video, _ = pm.DiscoveredVideo.discover(f"v{i}")
            pm.PipelineRun.start(video)
    pm.db.obj.close()
    pm.db.initialize(None)

    results = _run_workers(_claim_worker, tmp_path)

    assert [r["errors"] for r in results] == [[]] * PROCESSES
    claimed = [run_id for r in results for run_id in r["claimed"]]
    assert len(claimed) == 150 and len(set(claimed)) == 150
    assert sum(1 for r in results if r["claimed"]) > 1  # the work really was shared
    pm.init_db(tmp_path / "shared.db")
    runs = list(pm.PipelineRun.select())
    assert {r.status for r in runs} == {pm.RunStatus.awaiting_review}
    assert {r.attempts for r in runs} == {1}
    by_worker = {r.id: r.worker for r in runs}
    for n, result in enumerate(results):
        assert all(by_worker[run_id] == f"worker-{n}" for run_id in result["claimed"])


def _first_start_worker(path, barrier, n, out):
    barrier.wait()
    try:
        applied = pm.init_db(path) and pm.migrate()
        result = {"errors": [], "applied": applied}
    except Exception as exc:
        result = {"errors": [f"{type(exc).__name__}: {exc}"]}
    with open(out, "w") as fh:
        json.dump(result, fh)


@pytest.mark.slow
def test_processes_starting_at_once_on_a_new_file_migrate_it_once(tmp_path):
    results = _run_workers(_first_start_worker, tmp_path)
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    database = pm.init_db(tmp_path / "shared.db")
    names = [row[0] for row in database.execute_sql("SELECT name FROM schema_migration ORDER BY id")]
    assert names == [m.stem for m in sorted(pm.MIGRATIONS_DIR.glob("0*.py"))]  # each once, in order
    assert len(names) == 6
