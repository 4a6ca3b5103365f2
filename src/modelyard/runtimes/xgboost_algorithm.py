"""Built-in XGBoost, algorithm mode: ``python -m modelyard.runtimes.xgboost_algorithm``.

SageMaker's ``sagemaker-xgboost:1.7-1`` container without a ``sagemaker_program``:
channels ``train`` (required) and ``validation`` (optional), CSV (label first, no header)
or LIBSVM (the default, as in the container) per the train channel's ContentType;
hyperparameters validated as the container does, then passed to ``xgboost.train``; one log
line per round as CloudWatch shows the container's, ``[3]#011train-auc:0.99100#011
validation-auc:0.97300`` (``#011`` is a tab), which the container's metric regexes such as
``.*\[[0-9]+\].*#011validation-auc:(\S+)`` read.

The model is ``model/xgboost-model``: the container's ``Booster.save_model`` on that
extension-less name wrote XGBoost 1.7's legacy binary format, which XGBoost 3 no longer
writes; the file holds UBJSON, which XGBoost >= 1.6 loads with ``Booster(model_file=...)``.
Not a pickle: loading a model must not run code. With ``sagemaker_program`` set, the same
image runs a user script, so this module hands over to script mode, as the container does.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

from modelyard.runtimes import container
from modelyard.runtimes.container import UserError, log

MODEL_NAME = "xgboost-model"

OBJECTIVES = (
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson",
    "multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map",
    "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:quantileerror", "reg:gamma", "reg:tweedie",
    "survival:aft", "survival:cox", "reg:linear",
)
MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map",
    "ndcg", "precision", "r2", "recall", "precision_macro", "precision_micro",
    "recall_macro", "recall_micro",
)
MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe",
    "mse", "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
)

# The container's ranges (sagemaker_xgboost_container/algorithm_mode/
# hyperparameter_validation.py) in interval notation: "(" open, "[" closed.
NUMERIC = {
    "num_round": "int [1, inf)", "csv_weights": "int [0, 1]", "early_stopping_rounds": "int [1, inf)",
    "verbosity": "int [0, 3]", "nthread": "int [1, inf)", "eta": "float [0, 1]",
    "gamma": "float [0, inf)", "max_depth": "int [0, inf)", "min_child_weight": "float [0, inf)",
    "max_delta_step": "float [0, inf)", "subsample": "float (0, 1]", "colsample_bytree": "float (0, 1]",
    "colsample_bylevel": "float (0, 1]", "colsample_bynode": "float (0, 1]", "lambda": "float [0, inf)",
    "alpha": "float [0, inf)", "sketch_eps": "float (0, 1)", "scale_pos_weight": "float (0, inf)",
    "refresh_leaf": "int [0, 1]", "max_leaves": "int [0, inf)", "max_bin": "int [0, inf)",
    "rate_drop": "float [0, 1]", "one_drop": "int [0, 1]", "skip_drop": "float [0, 1]",
    "tweedie_variance_power": "float (1, 2)", "num_class": "int [2, inf)", "base_score": "float [0, inf)",
    "seed": "int (-2147483648, 2147483647)", "num_parallel_tree": "int [1, inf)",
    "aft_loss_distribution_scale": "float [0, inf)",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "objective": OBJECTIVES, "booster": ("gbtree", "gblinear", "dart"),
    "tree_method": ("auto", "exact", "approx", "hist", "gpu_hist"), "grow_policy": ("depthwise", "lossguide"),
    "process_type": ("default", "update"), "sample_type": ("uniform", "weighted"),
    "normalize_type": ("tree", "forest"), "sampling_method": ("uniform", "gradient_based"),
    "aft_loss_distribution": ("normal", "logistic", "extreme"), "save_model_on_termination": ("true", "false"),
}
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}


# ---------------------------------------------------------------- hyperparameters


def _number(name: str, raw: str) -> int | float:
    kind, interval = NUMERIC[name].split(" ", 1)
    low_text, high_text = (bound.strip() for bound in interval[1:-1].split(","))
    try:
        value = float(raw)
        if kind == "int" and not value.is_integer():
            raise ValueError
    except ValueError:
        raise UserError(f"Hyperparameter {name}: expected {'an integer' if kind == 'int' else 'a number'}, "
                        f"got {raw!r}") from None
    low, high = float(low_text), float(high_text)
    too_low = value <= low if interval[0] == "(" else value < low
    too_high = value >= high if interval[-1] == ")" else value > high
    if too_low or too_high or math.isnan(value):
        raise UserError(f"Hyperparameter {name}: value {raw!r} is outside the range {interval}")
    return int(value) if kind == "int" else value


def _pass_through(raw: str) -> int | float | str:
    """Any other xgboost parameter: a number when it reads as one, else the string."""
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def _eval_metrics(name: str, raw: str) -> list[str]:
    metrics = [metric.strip() for metric in raw.split(",") if metric.strip()]
    for metric in metrics:
        base, at, threshold = metric.partition("@")
        known = base in MAXIMIZE_METRICS + MINIMIZE_METRICS
        if not known or (at and base not in ("error", "ndcg", "map")):
            raise UserError(f"Hyperparameter {name}: metric {metric!r} is not supported; "
                            f"choose from {', '.join(MAXIMIZE_METRICS + MINIMIZE_METRICS)}")
        if at and not re.fullmatch(r"[-+]?\d*\.?\d+(e[-+]?\d+)?-?", threshold):
            raise UserError(f"Hyperparameter {name}: threshold in {metric!r} must be a number")
    return metrics


def parse_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """Validate and convert; every error names the hyperparameter, as the container's do."""
    params: dict[str, Any] = {}
    for given_name, value in raw.items():
        name = ALIASES.get(given_name, given_name)
        if name in NUMERIC:
            params[name] = _number(name, value)
        elif name in CHOICES:
            if value not in CHOICES[name]:
                raise UserError(f"Hyperparameter {name}: {value!r} is not one of {', '.join(CHOICES[name])}")
            params[name] = value
        elif name == "eval_metric":
            params[name] = _eval_metrics(name, value)
        elif name == "_tuning_objective_metric":
            params[name] = value
        elif name.startswith("sagemaker_"):
            continue  # platform bookkeeping, never an xgboost parameter
        else:
            params[name] = _pass_through(value)
    if "num_round" not in params:
        raise UserError("Missing required hyperparameter: num_round")
    objective = params.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in params:
        raise UserError("Require input for parameter 'num_class' for multi-classification")
    if "num_class" in params and not str(objective).startswith("multi:"):
        raise UserError("Hyperparameter num_class is only for multi-classification objectives (multi:*)")
    if "_kfold" in params or "_num_cv_round" in params:
        raise UserError("Cross-validation (_kfold, _num_cv_round) is not supported in modelyard yet.")
    return params


# ---------------------------------------------------------------- data


def content_format(content_type: str | None) -> str:
    """``csv`` / ``libsvm`` / ``parquet`` from a channel's ContentType, the container's way."""
    if not content_type:
        return "libsvm"
    media_type, *parameters = [part.strip() for part in content_type.lower().split(";")]
    if media_type in ("csv", "text/csv"):
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "label_size" and value.strip() != "1":
                raise UserError(f"{content_type} is not an accepted csv ContentType. "
                                "Optional parameter label_size must be equal to 1")
        return "csv"
    if media_type in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return "libsvm"
    if media_type in ("parquet", "application/x-parquet"):
        return "parquet"
    raise UserError(f"{content_type} is not an accepted ContentType: use text/csv, text/libsvm "
                    "or application/x-parquet (recordio-protobuf is not supported in modelyard).")


def _data_files(channel: str) -> list[Path]:
    # The container skips names starting with '.' or '_' (e.g. _SUCCESS from Spark).
    files = [path for path in container.channel_files(channel) if not path.name.startswith("_")]
    if not files or all(path.stat().st_size == 0 for path in files):
        raise UserError(f"No data in the {channel} channel ({container.channel_dir(channel)}).")
    return files


def _read_csv(files: list[Path], csv_weights: int) -> tuple[Any, Any, Any]:
    import numpy as np
    import pandas as pd

    with files[0].open(errors="replace") as first:
        sample = first.readline()
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
    except csv.Error:
        delimiter = ","  # one column only; let the parser decide
    frames = []
    for path in files:
        try:
            frames.append(pd.read_csv(path, header=None, sep=delimiter, dtype=np.float32, engine="c"))
        except pd.errors.EmptyDataError:  # a ValueError too: must come first
            continue
        except ValueError as error:
            raise UserError(f"CSV file {path.name} could not be read as numbers ({' '.join(str(error).split())}); "
                            "text/csv expects numbers only, the label in the first column and no header row."
                            ) from None
    if not frames:
        raise UserError(f"CSV files {', '.join(path.name for path in files)} hold no rows.")
    table = np.concatenate([frame.to_numpy() for frame in frames]) if len(frames) > 1 else frames[0].to_numpy()
    first_feature = 1 + csv_weights
    if table.shape[1] <= first_feature:
        raise UserError(f"CSV data has {table.shape[1]} column(s): need the label, "
                        f"{'a weight, ' if csv_weights else ''}and at least one feature.")
    if np.isnan(table[:, 0]).any():
        raise UserError("CSV data has rows without a label (empty first column).")
    weights = table[:, 1] if csv_weights else None
    return table[:, first_feature:], table[:, 0], weights


def _read_libsvm(train_files: list[Path], validation_files: list[Path]) -> tuple[Any, Any]:
    """Both channels in one call, so their matrices get the same number of columns;
    zero_based keeps column ids exactly as written, as xgboost's own LIBSVM parser does."""
    import numpy as np
    import scipy.sparse
    from sklearn.datasets import load_svmlight_files

    try:
        loaded = load_svmlight_files([str(path) for path in train_files + validation_files], zero_based=True)
    except ValueError as error:
        raise UserError(f"LIBSVM data could not be parsed: {error}") from None
    matrices, labels = loaded[0::2], loaded[1::2]
    split = len(train_files)
    train = (scipy.sparse.vstack(matrices[:split]).tocsr(), np.concatenate(labels[:split]), None)
    if not validation_files:
        return train, None
    return train, (scipy.sparse.vstack(matrices[split:]).tocsr(), np.concatenate(labels[split:]), None)


def load_dmatrices(fmt: str, csv_weights: int, with_validation: bool) -> tuple[Any, Any]:
    """Train and (optional) validation DMatrix from the channels' files."""
    import xgboost as xgb

    train_files = _data_files("train")
    validation_files = _data_files("validation") if with_validation else []
    if fmt == "csv":
        train = _read_csv(train_files, csv_weights)
        validation = _read_csv(validation_files, csv_weights) if validation_files else None
    elif fmt == "libsvm":
        train, validation = _read_libsvm(train_files, validation_files)
    else:
        raise UserError("application/x-parquet needs pyarrow, which this modelyard installation lacks; "
                        "use text/csv or text/libsvm.")
    dtrain = xgb.DMatrix(train[0], label=train[1], weight=train[2], nthread=container.num_cpus())
    dvalidation = None
    if validation is not None:
        if validation[0].shape[1] != train[0].shape[1]:
            raise UserError(f"Validation data has {validation[0].shape[1]} features but training data "
                            f"has {train[0].shape[1]}.")
        dvalidation = xgb.DMatrix(validation[0], label=validation[1], weight=validation[2])
    return dtrain, dvalidation


# ---------------------------------------------------------------- metrics and logging


# Metrics the container computes itself with scikit-learn (xgboost has no such eval_metric).
CUSTOM_METRICS = ("accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "precision",
                  "precision_macro", "precision_micro", "recall", "recall_macro", "recall_micro",
                  "mse", "r2")


def _custom_metric_functions(objective: str | None) -> dict[str, Callable[[Any, Any], float]]:
    """The CUSTOM_METRICS, built on demand (importing scikit-learn costs a second).

    XGBoost 3 hands a custom metric the *transformed* prediction of a built-in objective
    (probabilities, or class ids for multi:softmax), where the container's XGBoost 1.7 saw
    margins; class labels are derived accordingly."""
    import numpy as np
    from sklearn import metrics as m

    def labels_of(prediction: Any) -> Any:
        if prediction.ndim > 1:  # multi:softprob
            return np.argmax(prediction, axis=-1)
        if objective == "multi:softmax":
            return prediction.astype(int)
        cut = 0.0 if objective == "binary:logitraw" else 0.5  # margins vs probabilities / 0-1
        return (prediction > cut).astype(int)

    def classification(score: Callable[..., float], **options: Any) -> Callable[[Any, Any], float]:
        return lambda prediction, truth: (
            float(score(truth, labels_of(prediction), **options)) if prediction.size else 0.0)

    return {
        "accuracy": classification(m.accuracy_score),
        "balanced_accuracy": classification(m.balanced_accuracy_score),
        "f1": classification(m.f1_score, average="macro"),
        "f1_binary": classification(m.f1_score, average="binary"),
        "f1_macro": classification(m.f1_score, average="macro"),
        "precision": classification(m.precision_score),
        "precision_macro": classification(m.precision_score, average="macro"),
        "precision_micro": classification(m.precision_score, average="micro"),
        "recall": classification(m.recall_score),
        "recall_macro": classification(m.recall_score, average="macro"),
        "recall_micro": classification(m.recall_score, average="micro"),
        "mse": lambda prediction, truth: float(m.mean_squared_error(truth, prediction)),
        "r2": lambda prediction, truth: float(m.r2_score(truth, prediction)),
    }


def split_metrics(params: dict[str, Any]) -> tuple[str | None, Callable[..., Any] | None]:
    """Requested metrics (eval_metric plus a tuning job's objective metric) split into
    xgboost's own, left in ``params``, and a ``custom_metric`` callable for the container-
    defined ones. Also returns the early-stopping metric: the tuning objective's, else the
    last eval_metric, as in the container."""
    eval_metric: list[str] = list(params.pop("eval_metric", []) or [])
    tuning_metric = params.pop("_tuning_objective_metric", None)  # e.g. "validation:auc"
    requested = eval_metric
    stopping_metric = eval_metric[-1] if eval_metric else None
    if tuning_metric:  # the container unions and sorts
        stopping_metric = tuning_metric.split(":", 1)[-1]
        requested = sorted(set(eval_metric) | {stopping_metric})
    native = [metric for metric in requested if metric not in CUSTOM_METRICS]
    if native:
        params["eval_metric"] = native
    if len(native) == len(requested):
        return stopping_metric, None
    functions = _custom_metric_functions(params.get("objective"))
    chosen = [(name, functions[name]) for name in requested if name in CUSTOM_METRICS]

    def custom_metric(prediction: Any, data: Any) -> list[tuple[str, float]]:
        truth = data.get_label()
        return [(name, compute(prediction, truth)) for name, compute in chosen]

    return stopping_metric, custom_metric


def _round_logger() -> Any:
    import xgboost as xgb

    class CloudWatchEvaluationMonitor(xgb.callback.TrainingCallback):
        """xgboost's EvaluationMonitor line, with tabs as CloudWatch renders them (#011)."""

        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
            line = f"[{epoch}]"
            for data_name, metrics in evals_log.items():
                for metric_name, history in metrics.items():
                    score = history[-1][0] if isinstance(history[-1], tuple) else history[-1]
                    line += f"#011{data_name}-{metric_name}:{score:.5f}"
            log(line)
            return False

    return CloudWatchEvaluationMonitor()


def _xgboost_error_reason(error: Exception) -> str:
    """First line of an XGBoostError without the timestamp and source location."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^\[[\d:]+\]\s+\S+:\d+:\s*", "", first)


# ---------------------------------------------------------------- main


def main() -> None:
    raw = container.read_hyperparameters()
    if "sagemaker_program" in raw:
        from modelyard.runtimes import script_mode

        script_mode.main()
        return

    params = parse_hyperparameters(raw)
    data_config = container.read_input_data_config()
    channels = container.channel_names(data_config)
    if "train" not in channels:
        raise UserError("Missing required channel 'train'; the XGBoost algorithm needs training data.")
    with_validation = "validation" in channels
    fmt = content_format((data_config.get("train") or {}).get("ContentType"))

    import xgboost as xgb

    num_round = params.pop("num_round")
    csv_weights = params.pop("csv_weights", 0)
    early_stopping_rounds = params.pop("early_stopping_rounds", None)
    for ignored in ("save_model_on_termination", "use_dask_gpu_training"):
        params.pop(ignored, None)
    if params.get("objective") == "reg:linear":
        params["objective"] = "reg:squarederror"  # the name XGBoost 1.7 still accepted
    if params.get("tree_method") == "gpu_hist":
        log("tree_method gpu_hist: modelyard runs on CPU; training with tree_method hist.")
        params["tree_method"] = "hist"
    params.setdefault("nthread", container.num_cpus())
    stopping_metric, custom_metric = split_metrics(params)

    dtrain, dvalidation = load_dmatrices(fmt, csv_weights, with_validation)
    log(f"Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns")
    evals = [(dtrain, "train")]
    if dvalidation is not None:
        log(f"Validation matrix has {dvalidation.num_row()} rows")
        evals.append((dvalidation, "validation"))

    callbacks = [_round_logger()]
    if early_stopping_rounds and dvalidation is not None:
        # With no metric requested, stop on xgboost's default metric for the objective
        # (the container would silently not stop at all).
        callbacks.append(xgb.callback.EarlyStopping(
            rounds=early_stopping_rounds, data_name="validation", metric_name=stopping_metric,
            maximize=stopping_metric.partition("@")[0] in MAXIMIZE_METRICS if stopping_metric else None,
            save_best=True,
        ))
    elif early_stopping_rounds:
        log("early_stopping_rounds needs a validation channel; training all rounds.")
    try:
        booster = xgb.train(params, dtrain, num_boost_round=num_round, evals=evals,
                            custom_metric=custom_metric, callbacks=callbacks, verbose_eval=False)
    except xgb.core.XGBoostError as error:
        raise UserError(f"XGBoost training failed: {_xgboost_error_reason(error)}") from None

    model_dir = container.model_dir()
    model_dir.mkdir(parents=True, exist_ok=True)
    # The .ubj name picks UBJSON explicitly (no "default format" warning); then the name
    # the container uses.
    staging = model_dir / f"{MODEL_NAME}.ubj"
    booster.save_model(str(staging))
    os.replace(staging, model_dir / MODEL_NAME)
    log(f"Saved model to {model_dir / MODEL_NAME}")


if __name__ == "__main__":
    container.run_main(main)
