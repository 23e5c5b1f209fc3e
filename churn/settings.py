"""One typed settings object: defaults < churn.toml < CHURN_* environment variables < CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from churn.errors import UserError

DEFAULT_HOME = "churn-data"
PSEUDONYM_KEY_ENV = "CHURN_PSEUDONYM_KEY"
CONFIG_ENV = "CHURN_CONFIG"
MIN_KEY_CHARACTERS = 16
MAX_WAIT_SECONDS = 7 * 24 * 3600  # the longest settle or incomplete time: beyond it the clock arithmetic overflows


class SettingsFileError(UserError):
    """churn.toml (or the file named by $CHURN_CONFIG) is not valid TOML."""


class PseudonymKeyError(UserError, RuntimeError):
    """$CHURN_PSEUDONYM_KEY is missing or too short."""


def config_file() -> str:
    """The TOML settings file: $CHURN_CONFIG, else churn.toml in the current folder."""
    return os.environ.get(CONFIG_ENV, "churn.toml")


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone this machine knows, else ValueError saying what is allowed."""
    if name not in _iana_names():  # also refuses the machine-dependent 'localtime' and 'posixrules'
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/London'")
    return name


KNOWN_TIMEZONES: frozenset[str] | None = None  # IANA names this machine knows, read once


def _iana_names() -> frozenset[str]:
    global KNOWN_TIMEZONES
    if KNOWN_TIMEZONES is None:
        from zoneinfo import available_timezones

        # not zones but machine-dependent links or placeholders found in some zoneinfo folders
        KNOWN_TIMEZONES = frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}
    return KNOWN_TIMEZONES


NOT_MONEY = {"XTS", "XXX", "XAU", "XAG", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA"}


def check_currency(code: str) -> str:
    """`code` if it is an ISO 4217 currency (not a test code, a metal or a unit of account), else ValueError."""
    import pycountry

    if code != code.upper() or code in NOT_MONEY or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code: use three capital letters such as 'GBP', "
                         f"'EUR' or 'USD'")
    return code


def _described(annotation: Any) -> str:
    """What a setting's type looks like in TOML, for an error message."""
    from typing import get_args, get_origin

    if get_origin(annotation) is Literal:
        return " or ".join(repr(a) for a in get_args(annotation))
    text = str(annotation)
    for kind, words in (("dict", "a table"), ("list", 'a list of texts such as ["purchase"]'), ("bool", "true or false"),
                        ("int", "a whole number (no quotes, no decimal point)"), ("float", "a number"),
                        ("Path", "a path in quotes"), ("str", "text in quotes")):
        if kind in text:
            return words
    return text


class StrictTomlSource(TomlConfigSettingsSource):
    """churn.toml, read strictly: `seed = true`, `horizon_days = "90"` or `1.0`, `n_train_cutoffs = 1e3` are errors,
    not silently converted (environment variables are text and stay converted)."""

    def _read_file(self, file_path) -> dict[str, Any]:
        """The file's TOML, a UTF-8 byte order mark (Windows editors write one) skipped as event files skip it."""
        import tomllib

        return tomllib.loads(Path(file_path).read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8"))

    def __init__(self, settings_cls, toml_file):
        super().__init__(settings_cls, toml_file=toml_file)
        from pydantic import TypeAdapter, ValidationError

        for key, value in self.toml_data.items():
            field = settings_cls.model_fields.get(key)
            if field is None:
                continue  # an unknown key: reported by the settings themselves (extra="forbid")
            annotation = field.annotation
            if "Path" in str(annotation):
                ok = isinstance(value, str)
            else:
                try:
                    TypeAdapter(annotation, config=ConfigDict(strict=True)).validate_python(value)
                    ok = True
                except ValidationError:
                    ok = False
            if key == "model" and ok:  # [model]: numbers as numbers, the feature set as a list
                for name, inner in value.items():
                    wanted = list if name == "features" else (int, float)
                    if not isinstance(inner, wanted) or isinstance(inner, bool):
                        ok, key, value = False, f"model.{name}", inner
                        annotation = list[str] if name == "features" else float
                        break
            if not ok:
                import json

                raise SettingsFileError(f"settings file {Path(toml_file).resolve()}: setting {key}: must be "
                                        f"{_described(annotation)}, got {json.dumps(value, default=str)}")


class IngestConfig(BaseModel):
    """What the ingest flow needs from the settings."""

    model_config = ConfigDict(frozen=True)
    home: Path
    timezone: str
    future_tolerance_hours: float
    settle_seconds: float
    incomplete_seconds: float


class TrainConfig(BaseModel):
    """What the train flow needs from the settings."""

    model_config = ConfigDict(frozen=True)
    home: Path
    tracking_uri: str
    model_name: str
    experiment: str
    horizon_days: int
    serving_horizon_days: int  # the configured horizon (what scores are served for), whatever this run trains
    lookback_days: int
    activity_types: tuple[str, ...]
    n_train_cutoffs: int
    cutoff_step_days: int
    min_history_days: int
    seed: int
    model_params: dict[str, Any] = {}  # XGBoost hyperparameters over models/churn_model.DEFAULT_PARAMS
    features: tuple[str, ...]  # the feature set the model learns from
    refit: bool
    btyd_baselines: bool
    btyd_sample_customers: int
    bootstrap_resamples: int
    bootstrap_confidence: float
    engine: str  # where the labelled snapshots are built and the model trained: "duckdb" or "spark"
    spark_master: str
    contacted_in_training: str  # "exclude" or "keep" the snapshot rows contacted in their label window

    def bootstrap(self):
        """The paired bootstrap of this configuration (seeded like the model)."""
        from models.promotion import Bootstrap

        return Bootstrap(n_resamples=self.bootstrap_resamples, confidence=self.bootstrap_confidence, seed=self.seed)


class ScoreConfig(BaseModel):
    """What the score flow needs from the settings."""

    model_config = ConfigDict(frozen=True)
    home: Path
    tracking_uri: str
    model_name: str
    experiment: str
    lookback_days: int
    horizon_days: int
    tier_high: float
    tier_medium: float
    exact_reasons_top_n: int
    explain_low_risk: bool
    reasons: bool = True  # the bench measures scoring without reasons too; not a setting
    drift_threshold: float
    drift_action: str
    currency: str
    engine: str  # where the feature table is built and scored: "duckdb" or "spark"
    spark_master: str
    activity_types: tuple[str, ...] | None = None  # the settings' (checked against the model's); None: not checked

    def policy(self):
        """The pure scoring policy of this configuration."""
        from models.scoring import ScoringPolicy

        return ScoringPolicy(horizon_days=self.horizon_days, tier_high=self.tier_high, tier_medium=self.tier_medium,
                             exact_reasons_top_n=self.exact_reasons_top_n, reasons=self.reasons,
                             explain_low_risk=self.explain_low_risk, currency=self.currency)


class WinbackConfig(BaseModel):
    """What the win-back flow needs from the settings."""

    model_config = ConfigDict(frozen=True)
    home: Path
    top_n: int | None
    cooldown_days: int
    max_inactive_days: int
    actions: dict[str, str]
    currency: str
    control_share: float

    def policy(self):
        """The pure selection policy of this configuration (actions: the defaults, overridden by settings)."""
        from models.winback import DEFAULT_ACTIONS, WinbackPolicy

        return WinbackPolicy(top_n=self.top_n, cooldown_days=self.cooldown_days,
                             max_inactive_days=self.max_inactive_days, actions={**DEFAULT_ACTIONS, **self.actions},
                             currency=self.currency, control_share=self.control_share)


class OutcomesConfig(BaseModel):
    """What the campaign-outcome step needs from the settings."""

    model_config = ConfigDict(frozen=True)
    home: Path
    tracking_uri: str
    activity_types: tuple[str, ...]  # what counts as retained: the label's rule
    confidence: float  # of the intervals (bootstrap_confidence)


class EvaluateConfig(BaseModel):
    """What the evaluate (monitoring) flow needs from the settings."""

    model_config = ConfigDict(frozen=True)
    home: Path
    tracking_uri: str
    model_name: str
    experiment: str  # the monitoring experiment, one run per scored day
    activity_types: tuple[str, ...]  # what counts as coming back: the training labels' definition
    degradation_margin: float
    outcomes: OutcomesConfig  # the win-back lists' outcomes, reported in the same run


class Settings(BaseSettings):
    """Everything configurable; flows receive these values as plain parameters."""

    # inf and nan are refused in every float setting (an infinite settle time overflows the clock later)
    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="forbid", allow_inf_nan=False)

    home: Path = Field(default=Path(DEFAULT_HOME), description="data folder; everything is written below it")
    allow_outside_paths: bool = Field(default=False, description="let paths in settings (e.g. a SQLite tracking "
                                      "store) lie outside the data folder; they must then be absolute")
    timezone: str = Field(default="UTC", description="time zone of naive source timestamps")
    future_tolerance_hours: float = Field(default=24.0, ge=0, le=366 * 24,
                                          description="events later than now + this are quarantined")
    landing_settle_seconds: float = Field(default=5.0, ge=0, le=MAX_WAIT_SECONDS,
                                          description="a landing file is taken once its size and times held still "
                                          "this long (or a NAME.done marker lies beside it)")
    landing_incomplete_seconds: float = Field(default=300.0, ge=0, le=MAX_WAIT_SECONDS,
                                              description="a landing file whose end is cut short (a last line "
                                              "without a line end, a gzip stream or Parquet file without its end) is "
                                              "taken only with a NAME.done marker or once it held still this long")

    # features and labels
    horizon_days: int = Field(default=90, ge=1, le=3650)
    lookback_days: int = Field(default=365, ge=30, le=36500, description="customers inactive longer than this are out of scope")
    activity_types: list[str] = Field(default_factory=lambda: ["purchase"],
                                      description="event types that count as 'coming back' for the label")
    engine: str = Field(default="duckdb", description="where the feature table and the labelled snapshots are "
                        "built, the model trained and customers scored: 'duckdb' (in process) or 'spark' (the same "
                        "SQL transpiled, XGBoost's Spark estimator, scoring by partition; needs the spark extra and "
                        "Java 17+)")
    spark_master: str = Field(default="local[2]", description="the Spark master of engine 'spark': local[N], a "
                              "cluster URL (spark://, yarn, k8s://), or sc://HOST:PORT for Spark Connect")

    # training
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="random seed of the model and the generator")
    n_train_cutoffs: int = Field(default=4, ge=0, le=1000, description="stacked training snapshots, the latest first "
                                 "(0: as many as the history allows)")
    cutoff_step_days: int = Field(default=30, ge=1, le=3650, description="days between training cutoffs")
    min_history_days: int | None = Field(default=None, ge=0, le=36500, description="days of events before the first training "
                                         "cutoff (default: the horizon, so the shortest log that trains is three "
                                         "horizons long)")
    refit: bool = Field(default=True, description="after the honest evaluation, register the model refitted on the "
                        "training snapshots plus the validation snapshot with the tree count chosen before (the run's "
                        "metrics stay those of the evaluated model)")
    contacted_in_training: str = Field(default="exclude", pattern="^(exclude|keep)$", description="training snapshot "
                                       "rows whose customer was contacted in the label window: 'exclude' (the "
                                       "campaign's effect is not learned as behaviour) or 'keep'; validation always "
                                       "excludes them")
    model_name: str = "churn"
    experiment_name: str = "churn"
    mlflow_tracking_uri: str | None = Field(default=None, description="default: SQLite under <home>/mlflow")
    btyd_baselines: bool = Field(default=True, description="also fit the BG/NBD and Pareto/NBD baselines "
                                 "(pymc-marketing, MAP) in every training run")
    btyd_sample_customers: int = Field(default=20_000, ge=100, le=100_000_000, description="fit the BTYD models' population "
                                       "parameters on a seeded random sample of this many buyers (all customers "
                                       "are predicted)")
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000, description="paired bootstrap resamples for the champion "
                                     "gate and the model-vs-baseline intervals")
    bootstrap_confidence: float = Field(default=0.95, gt=0, lt=1, description="confidence of those intervals; a "
                                        "challenger is promoted only if the lower bound is above 0")

    # scoring and win-back
    currency: str = Field(default="GBP", description="ISO 4217 code of the event amounts: labels money in reason "
                          "texts and the win-back CSV (the pipeline converts nothing)")
    tier_high: float = Field(default=0.7, ge=0, le=1, description="P(churn) at or above which a customer is 'high'")
    tier_medium: float = Field(default=0.4, ge=0, le=1, description="P(churn) at or above which a customer is 'medium'")
    exact_reasons_top_n: int = Field(default=50_000, ge=0,
                                     description="exact TreeSHAP reasons for this many customers by value at risk")
    explain_low_risk: bool = Field(default=False, description="approximate reasons for low-tier customers too "
                                   "(default: only the exact budget and the medium and high tiers get reasons)")
    drift_psi_threshold: float = Field(default=0.25, gt=0, description="PSI above which a feature or the score drifted")
    drift_action: Literal["warn", "refuse"] = Field(default="warn",
                              description="on drift: 'warn' (publish, flag loudly) or 'refuse' (publish nothing)")
    winback_cooldown_days: int = Field(default=30, ge=0, le=36500, description="skip customers contacted this recently")
    winback_max_inactive_days: int = Field(default=180, ge=1, le=36500, description="skip customers gone longer than this")
    winback_control_share: float = Field(default=0.10, ge=0.0, le=0.5,
                                         description="share of each list held out as a control group (never "
                                                     "contacted, never in the CSV); 0: no hold-out")
    winback_actions: dict[str, str] = Field(default_factory=dict,
                                            description="reason category -> action; overrides the defaults")
    model: dict[str, Any] = Field(default_factory=dict,
                                  description="[model]: XGBoost hyperparameters and `features` over the defaults")

    # monitoring (`churn evaluate`)
    monitoring_experiment: str = Field(default="churn-monitoring", description="MLflow experiment of the realised "
                                       "and estimated quality of each scored day")
    degradation_margin: float = Field(default=0.05, ge=0, le=1, description="emit churn.model.degraded when a "
                                      "day's realised ROC-AUC is this far below the model's validation ROC-AUC")

    # local services and deployments
    services_host: str = Field(default="127.0.0.1", description="bind address of the local servers (loopback!)")
    prefect_port: int = Field(default=4200, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    schedule_timezone: str = "UTC"
    ingest_sweep_cron: str = "*/15 * * * *"
    score_cron: str = "0 6 * * *"
    winback_cron: str = Field(default="30 6 * * *", description="after the daily scoring; the list of the newest "
                                                                "published day")
    train_cron: str = Field(default="0 3 * * 1", description="weekly; quarterly is '0 3 1 1,4,7,10 *'")
    evaluate_cron: str = Field(default="0 7 * * *", description="daily, after scoring: realised quality of the "
                                                               "scored days whose horizon has passed")
    watch_interval_seconds: float = Field(default=2.0, gt=0, le=3600)

    # generator defaults
    generate_customers: int = Field(default=20_000, ge=1, le=1_000_000_000)
    generate_days: int = Field(default=730, ge=1, le=36500)
    generate_start: str = "2023-01-01"

    @field_validator("timezone", "schedule_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("home", mode="before")
    @classmethod
    def _home_folder(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("the data folder is empty text (give a folder, or leave the setting out for ./churn-data)")
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a folder")
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        return check_currency(value)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        from features.sql import DIALECTS

        if value not in DIALECTS:
            raise ValueError(f"unknown engine {value!r}; allowed: {', '.join(DIALECTS)}")
        return value

    @field_validator("activity_types")
    @classmethod
    def _event_types(cls, value: list[str]) -> list[str]:
        from expectations.event_types import EVENT_TYPES

        unknown = [v for v in value if v not in EVENT_TYPES]
        if unknown or not value:
            # an unknown type matches no event: every customer would be labelled churned
            raise ValueError((f"not event types: {unknown}" if unknown else "needs at least one event type")
                             + f"; allowed: {list(EVENT_TYPES)}")
        return list(dict.fromkeys(value))  # a type given twice counts once

    @field_validator("model")
    @classmethod
    def _model_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        model_parts(value)  # raises, naming the key and what is allowed
        return value

    @field_validator("winback_actions")
    @classmethod
    def _reason_categories(cls, value: dict[str, str]) -> dict[str, str]:
        from models.winback import DEFAULT_ACTIONS

        unknown = sorted(set(value) - set(DEFAULT_ACTIONS))
        if unknown:  # a misspelt category would silently keep the default action
            raise ValueError(f"not reason categories: {unknown}; allowed: {list(DEFAULT_ACTIONS)}")
        blank = sorted(k for k, v in value.items() if not v.strip())
        if blank:
            raise ValueError(f"empty action for {blank}")
        return value

    @model_validator(mode="after")
    def _tiers_ordered(self) -> "Settings":
        if self.tier_high <= self.tier_medium:
            raise ValueError(f"tier_high: must be above tier_medium (tier_high {self.tier_high}, tier_medium "
                             f"{self.tier_medium}); both are P(churn) thresholds between 0 and 1")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, StrictTomlSource(settings_cls, toml_file=config_file()))

    def ingest_config(self, **overrides: Any) -> IngestConfig:
        return IngestConfig(**{"home": self.home, "timezone": self.timezone,
                               "future_tolerance_hours": self.future_tolerance_hours,
                               "settle_seconds": self.landing_settle_seconds,
                               "incomplete_seconds": self.landing_incomplete_seconds, **overrides})

    def train_config(self, model: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
        """`model`: `churn train --set` values over the `[model]` settings."""
        params, features = model_parts({**self.model, **(model or {})})
        values = {"model_params": params, "features": tuple(features),
            "home": self.home, "tracking_uri": self.tracking_uri, "model_name": self.model_name,
            "experiment": self.experiment_name, "horizon_days": self.horizon_days,
            "serving_horizon_days": self.horizon_days, "lookback_days": self.lookback_days,
            "activity_types": tuple(self.activity_types), "n_train_cutoffs": self.n_train_cutoffs,
            "cutoff_step_days": self.cutoff_step_days, "seed": self.seed, "refit": self.refit,
            "btyd_baselines": self.btyd_baselines,
            "btyd_sample_customers": self.btyd_sample_customers, "bootstrap_resamples": self.bootstrap_resamples,
            "bootstrap_confidence": self.bootstrap_confidence, "min_history_days": self.min_history_days,
            "engine": self.engine, "spark_master": self.spark_master,
            "contacted_in_training": self.contacted_in_training, **overrides}
        if values["min_history_days"] is None:  # follows the horizon, after any override of the horizon
            values["min_history_days"] = values["horizon_days"]
        return TrainConfig(**values)

    def score_config(self, **overrides: Any) -> ScoreConfig:
        return ScoreConfig(**{
            "home": self.home, "tracking_uri": self.tracking_uri, "model_name": self.model_name,
            "experiment": self.experiment_name, "lookback_days": self.lookback_days,
            "horizon_days": self.horizon_days, "tier_high": self.tier_high, "tier_medium": self.tier_medium,
            "exact_reasons_top_n": self.exact_reasons_top_n, "explain_low_risk": self.explain_low_risk,
            "drift_threshold": self.drift_psi_threshold, "drift_action": self.drift_action,
            "currency": self.currency, "engine": self.engine, "spark_master": self.spark_master,
            "activity_types": tuple(self.activity_types), **overrides})

    def winback_config(self, **overrides: Any) -> WinbackConfig:
        return WinbackConfig(**{
            "home": self.home, "top_n": None, "cooldown_days": self.winback_cooldown_days,
            "max_inactive_days": self.winback_max_inactive_days, "actions": self.winback_actions,
            "control_share": self.winback_control_share,
            "currency": self.currency, **overrides})

    def evaluate_config(self, **overrides: Any) -> EvaluateConfig:
        return EvaluateConfig(**{
            "home": self.home, "tracking_uri": self.tracking_uri, "model_name": self.model_name,
            "experiment": self.monitoring_experiment, "activity_types": tuple(self.activity_types),
            "degradation_margin": self.degradation_margin, "outcomes": self.outcomes_config(), **overrides})
    def outcomes_config(self, **overrides: Any) -> OutcomesConfig:
        return OutcomesConfig(**{"home": self.home, "tracking_uri": self.tracking_uri,
                                 "activity_types": tuple(self.activity_types),
                                 "confidence": self.bootstrap_confidence, **overrides})

    @property
    def tracking_uri(self) -> str:
        """Absolute MLflow tracking URI (never relative to the current directory)."""
        uri = self.mlflow_tracking_uri
        if uri:  # judged by what it resolves to: a local store stays inside the data folder
            from storage.tracking import confined_tracking_uri

            return confined_tracking_uri(uri, self.home, self.allow_outside_paths)
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI overrides applied; the home folder made absolute."""
    import tomllib

    clean = {k: v for k, v in overrides.items() if v is not None}
    named = os.environ.get(CONFIG_ENV)
    if named and not Path(named).is_file():
        raise SettingsFileError(f"${CONFIG_ENV} names the settings file {Path(named).resolve()}, which "
                                f"{'is not a file' if Path(named).exists() else 'does not exist'}")
    from pydantic_settings import SettingsError

    try:
        s = Settings(**clean)
    except SettingsError as e:  # an environment variable a list or table setting could not read
        field = str(e).split('field "', 1)[-1].split('"', 1)[0]
        raise SettingsFileError(f"setting {field}: the environment variable CHURN_{field.upper()} must be JSON, e.g. "
                                + ('\'["purchase", "visit"]\'' if field == "activity_types"
                                   else '\'{"overdue": "call them"}\'' if field == "winback_actions"
                                   else "a JSON list or table")
                                + f" ({os.environ.get('CHURN_' + field.upper(), '')[:60]!r} is not)") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsFileError(f"settings file {Path(config_file()).resolve()} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise SettingsFileError(f"settings file {Path(config_file()).resolve()} is not UTF-8 text (byte {e.start}): "
                                f"save it as UTF-8") from None
    return s.model_copy(update={"home": s.home.expanduser().resolve()})


def defaults(home: Path | str, **overrides: Any) -> Settings:
    """The built-in defaults only (no churn.toml, no environment), with `home` and overrides: for tests and the bench."""
    return Settings.model_construct(home=Path(home).resolve(), **overrides)


def model_parts(model: dict[str, Any]) -> tuple[dict, list[str]]:
    """(XGBoost parameters, feature list) of a `[model]` table (validated: ValueError names the key)."""
    from features.customer import FEATURE_NAMES
    from features.season import SEASON_FEATURES
    from models.churn_model import model_overrides

    return model_overrides(model, [*FEATURE_NAMES, *SEASON_FEATURES])


def upper_bound(name: str) -> int | None:
    """The largest value a whole-number setting allows (declared once, on the field), for CLI flags."""
    return next((m.le for m in Settings.model_fields[name].metadata if getattr(m, "le", None) is not None), None)


def utc(value):
    """A pd.Timestamp in UTC; a naive date or time given by the user is read as UTC."""
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def pseudonym_key() -> bytes:
    """The pseudonymisation key, from the environment only (never from files, never logged)."""
    key = os.environ.get(PSEUDONYM_KEY_ENV, "")
    if len(key) < MIN_KEY_CHARACTERS:
        raise PseudonymKeyError(f"pseudonymised export needs a key: set {PSEUDONYM_KEY_ENV} to a secret of at least "
                                f"{MIN_KEY_CHARACTERS} characters" + (f" (it has {len(key)})" if key else ""))
    return key.encode()
