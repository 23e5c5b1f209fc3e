"""The clean-labels measurement moves exactly the labels the pipeline's flag removes."""

import pandas as pd


def test_simulated_campaigns_change_only_labels_of_rows_the_flag_marks(small_store):
    from churn.clean_labels import campaigns
    from features.snapshots import contacted_in_label_window, stacked_snapshots
    from models.snapshots import plan_cutoffs
    from simulator.generate import SimulationConfig, customer_parameters
    from storage import store

    cfg = SimulationConfig(customers=2000, days=600, seed=5, chunk_customers=1000)  # the small_store's
    params = pd.concat([customer_parameters(cfg, k, k * 1000, 1000) for k in range(2)], ignore_index=True)
    first, last, _ = store.store_time_range(small_store)
    plan = plan_cutoffs(first, last, 90, 3, 30, 90)
    con = store.connect(small_store)
    try:
        frame = stacked_snapshots(store.events_relation(con, small_store), list(plan.train), 90, 365)
    finally:
        con.close()
    before = frame.copy()
    labels, contacts = campaigns(cfg, params, frame, list(plan.train), 90, control_share=0.3, seed=5)
    assert contacts["customer_id"].is_unique and len(contacts) > 50  # a customer is listed once
    flag = contacted_in_label_window(frame, contacts, 90)
    changed = labels != frame["churned"]
    assert changed.any() and not (changed & ~flag).any()
    # a contact flags its own cutoff and the earlier ones whose window holds it
    assert flag.sum() > len(contacts)
    pd.testing.assert_frame_equal(frame, before)  # the frame passed in is not changed
