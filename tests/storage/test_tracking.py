import logging

from storage import tracking


def test_quiet_silences_mlflows_own_prints(tmp_path, capsys):
    """`--quiet` (the churn loggers at WARNING) also silences MLflow's prints such as "Created version '3' of
    model 'churn'.", which bypass logging; without --quiet they stay."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM, enable_logging, eprint

    churn = logging.getLogger("churn")
    before = churn.level
    try:
        churn.setLevel(logging.WARNING)
        tracking._point_at(f"sqlite:///{tmp_path / 'mlflow.db'}")
        eprint("Created version '3' of model 'churn'.")
        assert not MLFLOW_LOGGING_STREAM.enabled
        churn.setLevel(logging.INFO)
        enable_logging()
        tracking._point_at(f"sqlite:///{tmp_path / 'mlflow.db'}")
        eprint("Created version '4' of model 'churn'.")
    finally:
        churn.setLevel(before)
        enable_logging()
    err = capsys.readouterr().err
    assert "version '3'" not in err and "version '4'" in err
