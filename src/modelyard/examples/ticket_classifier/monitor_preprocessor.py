"""Model Monitor record preprocessor for the ticket classifier (``record_preprocessor_script``).

The classifier takes JSON text and answers with labels and probabilities, which the Model
Monitor analyzer cannot profile as they are: it works on flat, tabular records. SageMaker
calls ``preprocess_handler(inference_record)`` once per captured record; the record has
``endpoint_input`` / ``endpoint_output`` with ``data`` (the captured text, or base64 when
the capture encoding is ``BASE64``), ``encoding`` and ``observedContentType``. It returns a
dict (one row) or a list of dicts (one row each): a request with several tickets gives one
row per ticket, with these features:

* ``text_length``: the ticket's length in words (Integral);
* ``predicted_category``: the top label without fastText's ``__label__`` prefix (String);
* ``top_probability``: the top label's probability (Fractional).

Requests the classifier accepts: ``{"instances": ["text", ...]}`` (application/json),
``{"source": "text"}`` per line (application/jsonlines) or plain text, one per line.
Standard library only: it runs inside the analyzer's container.
"""

import base64
import json

LABEL_PREFIX = "__label__"


def preprocess_handler(inference_record, logger=None):
    """One feature row per ticket of the captured request; [] when nothing can be read."""
    texts = _texts(_payload(inference_record.endpoint_input))
    answers = _answers(_payload(getattr(inference_record, "endpoint_output", None)))
    if not texts and not answers:
        return []
    if answers and texts and len(answers) != len(texts):
        if logger is not None:
            logger.warning("%d tickets but %d answers in one record: skipped",
                           len(texts), len(answers))
        return []
    rows = []
    for index in range(max(len(texts), len(answers))):
        row = {}
        if texts:
            row["text_length"] = len(texts[index].split())
        if answers:
            label, probability = answers[index]
            row["predicted_category"] = label
            row["top_probability"] = probability
        rows.append(row)
    return rows[0] if len(rows) == 1 else rows


def features(text, answer):
    """The row ``preprocess_handler`` makes for one ticket and the classifier's answer to it
    (``{"label": [...], "prob": [...]}``): for a baseline built from the same features."""
    label, probability = _answer(answer)
    return {"text_length": len(text.split()), "predicted_category": label,
            "top_probability": probability}


def _payload(event_data):
    """The captured text of one side of the record ('' when absent)."""
    if event_data is None:
        return ""
    data = getattr(event_data, "data", None)
    if data is None:
        return ""
    if not isinstance(data, str):  # some callers hand over parsed JSON already
        return data
    if str(getattr(event_data, "encoding", "") or "").upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8", errors="replace")
    return data


def _texts(payload):
    if isinstance(payload, dict):
        return _texts_of(payload)
    if isinstance(payload, list):
        return [str(item) for item in payload]
    text = payload.strip()
    if not text:
        return []
    try:
        return _texts_of(json.loads(text))
    except ValueError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        return [str(json.loads(line)["source"]) for line in lines]  # JSON lines
    except (ValueError, KeyError, TypeError):
        return lines  # text/plain: one ticket per line


def _texts_of(document):
    if isinstance(document, dict) and isinstance(document.get("instances"), list):
        return [str(item) for item in document["instances"]]
    if isinstance(document, dict) and "source" in document:
        return [str(document["source"])]
    if isinstance(document, list):
        return [str(item) for item in document]
    return [str(document)]


def _answers(payload):
    if isinstance(payload, (dict, list)):
        documents = payload if isinstance(payload, list) else [payload]
        return [_answer(item) for item in documents]
    text = payload.strip()
    if not text:
        return []
    try:
        document = json.loads(text)
        documents = document if isinstance(document, list) else [document]
    except ValueError:
        documents = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [_answer(item) for item in documents]


def _answer(answer):
    labels = answer.get("label") or [""]
    probabilities = answer.get("prob") or [None]
    label = labels[0] if isinstance(labels, list) else labels
    probability = probabilities[0] if isinstance(probabilities, list) else probabilities
    label = str(label)
    if label.startswith(LABEL_PREFIX):
        label = label[len(LABEL_PREFIX):]
    return label, None if probability is None else float(probability)
