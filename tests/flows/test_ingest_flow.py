"""Smoke test of the Prefect ingest flow under Prefect's test harness."""

from storage import store
from tests.conftest import config
from tests.flows.test_ingest import CORPUS, write


def test_ingest_flow_sweeps_the_landing_folder(paths, prefect_harness):
    from flows.ingest import ingest_flow

    write(paths, "corpus.csv", CORPUS)
    write(paths, "more.csv", "customer_id,event_type,event_time\nc9,visit,2024-02-01T00:00:00Z\n")
    s = ingest_flow(config(paths, "ingest"))
    assert (s["files_ingested"], s["rows_in"], s["stored"], s["quarantined"], s["duplicates"]) == (2, 13, 5, 7, 1)
    again = ingest_flow(config(paths, "ingest"))
    assert (again["files_skipped"], again["stored"]) == (2, 0)
    assert len(store.read_events(paths)) == 5
