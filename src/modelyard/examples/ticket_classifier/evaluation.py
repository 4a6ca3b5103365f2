"""Evaluate a BlazingText (fastText) model on the test split; write evaluation.json.

Runs in a SageMaker processing job: the model tarball arrives in
/opt/ml/processing/model, the test split in /opt/ml/processing/test. Writes accuracy,
macro precision, recall and F1, and the confusion matrix to
/opt/ml/processing/evaluation/evaluation.json.
"""

import glob
import json
import os
import tarfile

import fasttext

MODEL_DIR = "/opt/ml/processing/model"
TEST_DIR = "/opt/ml/processing/test"
OUTPUT_DIR = "/opt/ml/processing/evaluation"


def main():
    with tarfile.open(os.path.join(MODEL_DIR, "model.tar.gz")) as archive:
        archive.extractall(MODEL_DIR, filter="data")
    model = fasttext.load_model(os.path.join(MODEL_DIR, "model.bin"))

    truth, predicted = [], []
    for path in sorted(glob.glob(os.path.join(TEST_DIR, "*"))):
        with open(path) as handle:
            for line in handle:
                label, _, text = line.strip().partition(" ")
                if not text:
                    continue
                truth.append(label.replace("__label__", ""))
                predicted.append(model.predict(text)[0][0].replace("__label__", ""))
    labels = sorted(set(truth) | set(predicted))
    confusion = {actual: {guess: 0 for guess in labels} for actual in labels}
    for actual, guess in zip(truth, predicted):
        confusion[actual][guess] += 1

    precisions, recalls, f1s = [], [], []
    for label in labels:
        true_positive = confusion[label][label]
        predicted_count = sum(confusion[actual][label] for actual in labels)
        actual_count = sum(confusion[label].values())
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / actual_count if actual_count else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    accuracy = sum(confusion[label][label] for label in labels) / max(1, len(truth))
    report = {"metrics": {
        "accuracy": accuracy,
        "precision": sum(precisions) / len(labels),
        "recall": sum(recalls) / len(labels),
        "f1": sum(f1s) / len(labels),
        "test_examples": len(truth),
        "confusion_matrix": confusion,
    }}
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    with open(os.path.join(OUTPUT_DIR, "evaluation.json"), "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"accuracy {accuracy:.4f} on {len(truth)} test tickets")


if __name__ == "__main__":
    main()
