"""Job runtimes, run as the executor runs them: ``python -m modelyard.runtimes.<name>`` in a
directory laid out like a SageMaker container's /opt/ml (here a tmp dir, via
MODELYARD_ML_ROOT), with small real data written by the tests. No server is involved."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE_DIR = Path(__file__).resolve().parents[1] / "src"

# BlazingText's metric definitions (train:accuracy, validation:accuracy).
BLAZINGTEXT_VALIDATION_ACCURACY = r"#validation_accuracy: (\S+)"
BLAZINGTEXT_TRAIN_ACCURACY = r"#train_accuracy: (\S+)"
# validation:auc as the sagemaker-xgboost container defines it (algorithm_mode/metrics.py,
# what SageMaker serves as the algorithm's metric definitions) and as the AWS XGBoost
# tuning docs print it. The SageMaker SDK itself carries no XGBoost regexes.
XGBOOST_VALIDATION_AUC_REGEXES = (
    r".*\[[0-9]+\].*#011validation-auc:(\S+)",
    r".*\[[0-9]+\].*#011validation-auc:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*",
)


# ---------------------------------------------------------------- job directories


def make_job(root: Path, hyperparameters: dict[str, str], channels: dict[str, dict[str, str]],
             content_type: str = "text/plain") -> Path:
    """Lay out /opt/ml as the executor does before a runtime starts."""
    for directory in ("input/config", "model", "output/data", "checkpoints", "code"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    config = root / "input" / "config"
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({
        name: {"ContentType": content_type, "TrainingInputMode": "File",
               "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for name in channels
    }))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
        "current_instance_type": "ml.m5.large",
    }))
    for name, files in channels.items():
        channel = root / "input" / "data" / name
        channel.mkdir(parents=True, exist_ok=True)
        for file_name, content in files.items():
            (channel / file_name).write_text(content)
    return root


def run_runtime(name: str, root: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MODELYARD_ML_ROOT=str(root), SM_NUM_CPUS="2", OMP_NUM_THREADS="2",
               TRAINING_JOB_NAME="test-job",
               PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_DIR), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", f"modelyard.runtimes.{name}"], cwd=cwd or root, env=env,
                          capture_output=True, text=True, timeout=120)


def failure_reason(root: Path) -> str:
    return (root / "output" / "failure").read_text()


def metric_values(regex: str, log: str) -> list[float]:
    return [float(match.group(1)) for line in log.splitlines() if (match := re.match(regex, line))]


# ---------------------------------------------------------------- BlazingText

TICKET_WORDS = {
    "network": ["router", "dhcp", "wifi", "switch", "packet", "dns", "vpn", "latency", "ethernet"],
    "billing": ["invoice", "refund", "charge", "payment", "card", "price", "receipt", "subscription"],
    "hardware": ["disk", "keyboard", "monitor", "fan", "battery", "screen", "cable", "laptop"],
}
FILLER = ["the", "is", "not", "my", "please", "help", "with", "today", "again", "broken", "since"]


def fasttext_lines(count: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        category = rng.choice(sorted(TICKET_WORDS))
        words = rng.choices(TICKET_WORDS[category], k=4) + rng.choices(FILLER, k=5)
        rng.shuffle(words)
        lines.append(f"__label__{category} {' '.join(words)}")
    return "\n".join(lines) + "\n"


def test_blazingtext_supervised_trains_reports_accuracy_and_saves_a_fasttext_model(tmp_path: Path) -> None:
    train = fasttext_lines(600, seed=1)
    half = len(train) // 2
    cut = train.index("\n", half) + 1
    root = make_job(tmp_path, {
        "mode": "supervised", "epochs": "10", "learning_rate": "0.3", "vector_dim": "20",
        "word_ngrams": "2", "buckets": "20000", "min_count": "1",
    }, {
        # two files in the channel, the first without a final newline: they must not merge lines
        "train": {"part-1.txt": train[:cut].rstrip("\n"), "part-2.txt": train[cut:]},
        "validation": {"validation.txt": fasttext_lines(150, seed=2)},
    })

    result = run_runtime("blazingtext", root)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / "output" / "failure").exists()
    assert metric_values(BLAZINGTEXT_VALIDATION_ACCURACY, result.stdout)[-1] > 0.8
    assert metric_values(BLAZINGTEXT_TRAIN_ACCURACY, result.stdout)[-1] > 0.8
    assert "Number of train examples: 600" in result.stdout
    assert "Number of validation examples: 150" in result.stdout
    assert "Progress: 100.00%" in result.stdout

    import fasttext

    model = fasttext.load_model(str(root / "model" / "model.bin"))
    labels, _probabilities = model.predict("router not responding dhcp wifi")
    assert labels[0] == "__label__network"


def test_blazingtext_accuracy_of_a_channel_tested_in_parallel_pieces_matches_fasttext(tmp_path: Path) -> None:
    # Over 4 MB, a channel is tested in pieces by forked processes; the counts must add up
    # to exactly what fastText's test() says about the whole file.
    train = fasttext_lines(90_000, seed=5)
    assert len(train) > 4 << 20
    root = make_job(tmp_path, {"mode": "supervised", "epochs": "1", "vector_dim": "10",
                               "buckets": "20000", "min_count": "1"},
                    {"train": {"train.txt": train}})

    result = run_runtime("blazingtext", root)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Number of train examples: 90000" in result.stdout
    import fasttext

    model = fasttext.load_model(str(root / "model" / "model.bin"))
    _examples, precision_at_1, _recall = model.test(str(root / "input" / "data" / "train" / "train.txt"))
    assert metric_values(BLAZINGTEXT_TRAIN_ACCURACY, result.stdout) == [round(precision_at_1, 4)]


def test_blazingtext_without_hash_buckets_does_not_hit_uninitialised_memory(tmp_path: Path) -> None:
    # word_ngrams=1 gives fastText a small input matrix from recycled heap memory; without
    # the runtime's zero-fill it ended most runs with "Encountered NaN." at any rate.
    for attempt in range(3):
        root = make_job(tmp_path / str(attempt), {
            "mode": "supervised", "epochs": "5", "word_ngrams": "1", "min_count": "1",
        }, {"train": {"train.txt": fasttext_lines(300, seed=attempt)}})
        result = run_runtime("blazingtext", root)
        assert result.returncode == 0, result.stdout + result.stderr


def test_blazingtext_absurd_learning_rate_fails_with_fasttexts_nan_error(tmp_path: Path) -> None:
    root = make_job(tmp_path, {"mode": "supervised", "learning_rate": "1e9", "epochs": "5"},
                    {"train": {"train.txt": fasttext_lines(300, seed=3)}})

    result = run_runtime("blazingtext", root)

    assert result.returncode != 0
    assert "Encountered NaN" in failure_reason(root)
    assert not (root / "model" / "model.bin").exists()


@pytest.mark.parametrize(("hyperparameters", "expected"), [
    ({"mode": "skipgram"}, "only mode 'supervised'"),
    ({}, "mode is missing"),
    ({"mode": "supervised", "epochs": "ten"}, "Hyperparameter epochs"),
    ({"mode": "supervised", "learning_rate": "-0.1"}, "Hyperparameter learning_rate"),
    ({"mode": "supervised", "pretrained_vectors": "s3://bucket/vectors.txt"}, "pretrained_vectors"),
    ({"mode": "supervised", "early_stopping": "True"}, "validation"),
])
def test_blazingtext_rejects_what_it_cannot_run_naming_the_problem(
        tmp_path: Path, hyperparameters: dict[str, str], expected: str) -> None:
    root = make_job(tmp_path, hyperparameters, {"train": {"train.txt": fasttext_lines(50, seed=4)}})

    result = run_runtime("blazingtext", root)

    assert result.returncode != 0
    assert expected in failure_reason(root)
    assert expected in result.stderr


# ---------------------------------------------------------------- XGBoost algorithm mode


def breast_cancer_csv() -> tuple[str, str]:
    """Label-first CSV without a header, split 400 / 169."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    rows = np.column_stack([labels, features])[np.random.default_rng(0).permutation(len(labels))]

    def as_csv(part: np.ndarray) -> str:
        return "\n".join(",".join(f"{value:.6g}" for value in row) for row in part) + "\n"

    return as_csv(rows[:400]), as_csv(rows[400:])


# Loading the extension-less xgboost-model, XGBoost notes that it guesses UBJSON: expected.
@pytest.mark.filterwarnings("ignore:.*Unknown file format")
def test_xgboost_trains_logs_rounds_for_the_metric_regexes_and_saves_a_loadable_booster(tmp_path: Path) -> None:
    train, validation = breast_cancer_csv()
    root = make_job(tmp_path, {"objective": "binary:logistic", "eval_metric": "auc", "num_round": "20",
                               "max_depth": "3", "eta": "0.3"},
                    {"train": {"train.csv": train}, "validation": {"validation.csv": validation}},
                    content_type="text/csv")

    result = run_runtime("xgboost_algorithm", root)

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\[0\]#011train-auc:[0-9.]+#011validation-auc:[0-9.]+$", result.stdout, re.MULTILINE)
    for regex in XGBOOST_VALIDATION_AUC_REGEXES:
        values = metric_values(regex, result.stdout)
        assert len(values) == 20
        assert values[-1] > 0.95

    import numpy as np
    import xgboost

    booster = xgboost.Booster(model_file=str(root / "model" / "xgboost-model"))
    assert booster.num_boosted_rounds() == 20
    table = np.loadtxt(validation.splitlines(), delimiter=",")
    predictions = booster.predict(xgboost.DMatrix(table[:, 1:]))
    assert ((predictions > 0.5) == table[:, 0]).mean() > 0.9


def test_xgboost_without_a_train_channel_fails_naming_the_channel(tmp_path: Path) -> None:
    _train, validation = breast_cancer_csv()
    root = make_job(tmp_path, {"num_round": "5"}, {"validation": {"validation.csv": validation}},
                    content_type="text/csv")

    result = run_runtime("xgboost_algorithm", root)

    assert result.returncode != 0
    assert "channel 'train'" in failure_reason(root)


@pytest.mark.parametrize(("hyperparameters", "train", "expected"), [
    ({"num_round": "5"}, "label,radius,texture\n1,2.5,3\n", "train.csv could not be read as numbers"),
    ({"num_round": "5", "objective": "reg:nonsense"}, "1,2.5,3\n", "Hyperparameter objective"),
    ({"objective": "binary:logistic"}, "1,2.5,3\n", "num_round"),
])
def test_xgboost_bad_input_fails_naming_the_problem(
        tmp_path: Path, hyperparameters: dict[str, str], train: str, expected: str) -> None:
    root = make_job(tmp_path, hyperparameters, {"train": {"train.csv": train}}, content_type="text/csv")

    result = run_runtime("xgboost_algorithm", root)

    assert result.returncode != 0
    assert expected in failure_reason(root)


# ---------------------------------------------------------------- script mode

TRAIN_SCRIPT = '''
import argparse, json, os, sys
import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int, default=1)
parser.add_argument("--criterion", type=str, default="gini")
parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
args = parser.parse_args()
if os.environ["SM_HP_CRITERION"] == "explode":
    raise ValueError("boom: the script refused its criterion")

data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
model = RandomForestClassifier(n_estimators=args.n_estimators, criterion=args.criterion, random_state=0)
joblib.dump(model.fit(data[:, 1:], data[:, 0]), os.path.join(args.model_dir, "model.joblib"))
seen = {"argv": sys.argv[1:], "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")}}
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
print("trained", args.n_estimators, "trees")
'''


def script_mode_job(root: Path, criterion: str) -> Path:
    train, _validation = breast_cancer_csv()
    root = make_job(root, {  # encoded as the SageMaker SDK's SKLearn estimator sends them
        "n-estimators": "7", "criterion": json.dumps(criterion),
        "sagemaker_program": json.dumps("train.py"),
        "sagemaker_submit_directory": json.dumps("s3://bucket/job/source/sourcedir.tar.gz"),
        "sagemaker_container_log_level": "20", "sagemaker_job_name": json.dumps("test-job"),
        "sagemaker_region": json.dumps("us-east-1"),
    }, {"train": {"train.csv": train}}, content_type="text/csv")
    (root / "code" / "train.py").write_text(TRAIN_SCRIPT)
    return root


def test_script_mode_runs_the_entry_point_with_the_toolkits_arguments_and_environment(tmp_path: Path) -> None:
    root = script_mode_job(tmp_path, criterion="entropy")

    result = run_runtime("script_mode", root, cwd=root / "code")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "trained 7 trees" in result.stdout
    import joblib

    model = joblib.load(root / "model" / "model.joblib")
    assert (model.n_estimators, model.criterion) == (7, "entropy")
    seen = json.loads((root / "output" / "data" / "seen.json").read_text())
    assert seen["argv"] == ["--criterion", "entropy", "--n-estimators", "7"]
    assert Path(seen["cwd"]) == root / "code"
    env = seen["env"]
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert json.loads(env["SM_HPS"]) == {"criterion": "entropy", "n-estimators": 7}
    assert (env["SM_HP_N-ESTIMATORS"], env["SM_HP_CRITERION"]) == ("7", "entropy")
    assert json.loads(env["SM_USER_ARGS"]) == ["--criterion", "entropy", "--n-estimators", "7"]
    assert (env["SM_USER_ENTRY_POINT"], env["SM_MODULE_NAME"]) == ("train.py", "train")
    assert env["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"
    assert (env["SM_NUM_CPUS"], env["SM_NUM_GPUS"], env["SM_LOG_LEVEL"]) == ("2", "0", "20")
    assert (env["SM_CURRENT_HOST"], json.loads(env["SM_HOSTS"])) == ("algo-1", ["algo-1"])
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert env["SM_IS_HETERO"] == "false"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == {"criterion": "entropy", "n-estimators": 7}
    assert training_env["job_name"] == "test-job"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["ContentType"] == "text/csv"


def test_script_mode_installs_requirements_into_a_job_private_environment(tmp_path: Path) -> None:
    root = script_mode_job(tmp_path, criterion="gini")
    # Already installed, so pip needs no index; a new package would land in the job's venv.
    (root / "code" / "requirements.txt").write_text("joblib\n")

    result = run_runtime("script_mode", root, cwd=root / "code")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Requirement already satisfied: joblib" in result.stdout
    assert "trained 7 trees" in result.stdout
    assert "/venv/bin/python train.py" in result.stdout


def test_script_mode_failure_reports_the_scripts_exception(tmp_path: Path) -> None:
    root = script_mode_job(tmp_path, criterion="explode")

    result = run_runtime("script_mode", root, cwd=root / "code")

    assert result.returncode != 0
    reason = failure_reason(root)
    assert reason.startswith("ExecuteUserScriptError:")
    assert "ExitCode 1" in reason
    assert "ValueError: boom: the script refused its criterion" in reason
    assert "train.py --criterion explode --n-estimators 7" in reason
    assert "ValueError: boom" in result.stderr  # the traceback streamed to the log too


def test_xgboost_image_with_sagemaker_program_runs_the_script(tmp_path: Path) -> None:
    root = script_mode_job(tmp_path, criterion="gini")

    result = run_runtime("xgboost_algorithm", root, cwd=root / "code")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "trained 7 trees" in result.stdout


def test_script_mode_runs_a_shell_entry_point_with_sh(tmp_path: Path) -> None:
    root = make_job(tmp_path, {"sagemaker_program": json.dumps("train.sh"), "depth": "3"},
                    {"train": {"data.txt": "x\n"}})
    (root / "code" / "train.sh").write_text('echo "args: $*" > "$SM_MODEL_DIR/model.txt"\n')

    result = run_runtime("script_mode", root, cwd=root / "code")

    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "model" / "model.txt").read_text() == "args: --depth 3\n"
