"""The feature records: each one complete, its SQL referring only to columns the query computes."""

import re

from features.definitions import AS_OF, DEFINITIONS, FEATURE_NAMES, FEATURES, ROLE, aggregates, markdown_table


def test_names_are_unique_and_in_model_order():
    assert FEATURE_NAMES == [f.name for f in DEFINITIONS]
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert len({a.name for a in aggregates()}) == len(aggregates())


def test_every_record_is_complete():
    for f in DEFINITIONS:
        assert f.meaning and f.unit and f.reason_category and f.sentence and f.expression and f.fact, f.name
        assert f.when_missing is None or f.when_missing.strip(), f.name
        assert FEATURES[f.name] == (f.meaning, f.unit)


def test_expressions_use_only_the_columns_the_query_computes():
    agg = {a.name for a in aggregates()}
    for f in DEFINITIONS:
        assert set(re.findall(r"\ba\.(\w+)", f.expression)) <= agg, f.name
        assert set(re.findall(r"\bg\.(\w+)", f.expression)) <= {"gap_mean", "gap_std"}, f.name
        assert AS_OF not in f.expression, f.name  # the cutoff enters through the aggregates only


def test_roles_name_the_features_the_baselines_and_sentences_read():
    assert ROLE == {"recency": "days_since_last_purchase", "frequency": "purchases_365d", "monetary": "spend_365d",
                    "tenure": "tenure_days", "gap": "purchase_gap_mean_days", "overdue": "overdue_ratio"}


def test_markdown_table_has_one_row_per_feature():
    rows = markdown_table().splitlines()
    assert rows[0] == "| feature | meaning | unit | reason category | a reason when the value is |"
    assert [re.match(r"\| `(\w+)` \|", r).group(1) for r in rows[2:]] == FEATURE_NAMES
