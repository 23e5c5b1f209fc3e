"""Contact exports end to end: accounting, quarantine, replays, a bad file among good ones, the landing folder."""

import pandas as pd

from flows.contacts import ingest_contacts, ingest_contacts_file
from storage import contacts, sources
from tests.conftest import NOW, config

HEADER = "customer_id,contacted_at,action,list_id,channel\n"
EXPORT = HEADER + "\n".join([
    " C1\u00a0,2024-05-01T10:00:00Z,service call,winback-2024-04-30,phone",  # good; id padded as a CRM pads it
    "C2,2024-05-02 09:30,reminder,,email",                                  # good; naive time read as UTC
    "C2,2024-05-02 09:30,reminder,,email",                                  # the same contact twice: a duplicate
    ",2024-05-03T10:00:00Z,reminder,,email",                               # no customer
    "C3,yesterday,reminder,,email",                                          # unreadable time
    "C4,2099-01-01T00:00:00Z,reminder,,email",                              # in the future
    "C5,2024-05-03T10:00:00Z,,,email",                                       # no action
    "C6,2024-05-04T10:00:00Z,offer",                                         # too few fields
]) + "\n"


def write(folder, name, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


def ingest(paths, file, **kw):
    r = ingest_contacts_file(config(paths, "ingest"), file, now=NOW, **kw)
    assert r["rows_in"] == r["stored"] + r["quarantined"] + r["duplicates"]
    return r


def test_contacts_are_stored_once_with_bad_rows_quarantined_and_replays_store_nothing(paths, tmp_path):
    f = write(tmp_path, "crm.csv", EXPORT)
    r = ingest(paths, f)
    assert r["status"] == "ingested"
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"]) == (8, 2, 5, 1)
    assert r["reasons"] == {"customer_id: missing": 1, "contacted_at: unparseable": 1,
                            "contacted_at: in the future": 1, "action: missing": 1,
                            "malformed CSV record: 3 fields, header has 5": 1}
    stored = contacts.read_contacts(paths).set_index("customer_id")
    assert sorted(stored.index) == ["C1", "C2"]  # ids by the events' rule: trimmed, NBSP and all
    assert stored.loc["C1", "list_id"] == "winback-2024-04-30" and stored.loc["C1", "channel"] == "phone"
    assert stored.loc["C2", "contacted_at"] == pd.Timestamp("2024-05-02T09:30Z")
    assert pd.isna(stored.loc["C2", "list_id"])
    q = contacts.read_quarantine(paths)
    assert sorted(q["row_number"]) == [4, 5, 6, 7, 8] and set(q["source_file"]) == {str(f)}
    assert q.set_index("row_number").loc[5, "original"].count("yesterday") == 1  # the row as it was written
    # the same file again: skipped by its content; forced: every stored row a duplicate, nothing stored twice
    assert ingest(paths, f)["status"] == "skipped"
    forced = ingest(paths, f, force=True)
    assert (forced["stored"], forced["quarantined"], forced["duplicates"]) == (0, 5, 3)
    # a later export repeating one contact and adding one: only the new one is stored
    later = write(tmp_path, "crm2.csv", HEADER + "C2,2024-05-02T09:30:00Z,reminder,,email\n"
                                                 "C7,2024-05-05T10:00:00Z,offer,,letter\n")
    r2 = ingest(paths, later)
    assert (r2["stored"], r2["duplicates"]) == (1, 1)
    assert sorted(contacts.read_contacts(paths)["customer_id"]) == ["C1", "C2", "C7"]
    assert contacts.read_contacts(paths)["contact_id"].is_unique


def test_an_unusable_file_is_rejected_with_its_error_and_the_others_are_ingested(paths):
    folder = paths.landing_contacts
    write(folder, "a-wrong-columns.csv", "id,when\n1,2\n")
    write(folder, "b-good.csv", HEADER + "C9,2024-05-01T10:00:00Z,reminder,,email\n")
    write(folder, "c-not-utf8.csv", "")
    (folder / "c-not-utf8.csv").write_bytes(HEADER.encode() + b"C\xe9,2024-05-01,call,,\n")
    write(folder, "d-case.csv", "customer_id,contacted_at,action,Action\nc1,2024-06-01T10:00:00Z,call,mail\n")
    summary = ingest_contacts(config(paths, "ingest"))  # the sweep of landing/contacts/
    by = {f["file"].rsplit("/", 1)[-1]: f for f in summary["files"]}
    assert by["a-wrong-columns.csv"]["status"] == "rejected"
    assert by["a-wrong-columns.csv"]["error"].startswith("missing required columns ['customer_id', 'contacted_at', "
                                                         "'action']")
    assert by["c-not-utf8.csv"]["status"] == "rejected" and "not UTF-8" in by["c-not-utf8.csv"]["error"]
    assert by["b-good.csv"]["status"] == "ingested" and by["b-good.csv"]["stored"] == 1
    assert by["d-case.csv"]["status"] == "rejected" and "differ only in letter case" in by["d-case.csv"]["error"]
    assert summary["files_rejected"] == 3 and summary["stored"] == 1
    # rejected files are moved out of the landing folder with their error; the good one is remembered
    assert sorted(p.name for p in folder.iterdir()) == ["b-good.csv"]
    assert len(list(paths.rejected.glob("*.error.json"))) == 3
    assert ingest_contacts(config(paths, "ingest"))["files_skipped"] == 1
    # the event sweep passes over landing/contacts/ (neither read as events nor reported as refused)
    scan = sources.landing_scan(paths)
    assert scan.files == [] and scan.refused == []


def test_the_contacts_flow_runs_under_prefect(paths, tmp_path, prefect_harness):
    from flows.contacts import contacts_flow

    f = write(tmp_path, "crm.csv", EXPORT)
    r = contacts_flow(config(paths, "ingest"), files=[str(f)])
    assert (r["rows_in"], r["stored"], r["quarantined"], r["duplicates"], r["files_ingested"]) == (8, 2, 5, 1, 1)
