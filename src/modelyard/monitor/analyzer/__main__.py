"""Entry point of the analyzer container: dispatch on ``analysis_type``.

``DATA_QUALITY`` (the default) runs :mod:`.data_quality`; ``MODEL_QUALITY`` (or a
``sagemakerMergeJson`` dataset) runs :mod:`.model_quality`. The termination message the
analysis returns goes to ``/opt/ml/output/message`` (the job's ExitMessage); a failure goes
to ``/opt/ml/output/failure`` (its FailureReason): ``ClientError: ...`` for bad input or
baseline files, ``AlgorithmError: ...`` otherwise, and the process exits 1.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

OUTPUT_DIR = Path("/opt/ml/output")


def _write(name: str, text: str) -> None:
    try:
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUTPUT_DIR / name).write_text(text, encoding="utf-8")
    except OSError:  # run outside a job sandbox: the message is printed anyway
        pass


def main(env: dict[str, str] | None = None) -> int:
    """Run the analysis the environment asks for; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    env = dict(os.environ if env is None else env)
    analysis_type = (env.get("analysis_type") or "DATA_QUALITY").upper()
    from .constraints import BaselineError
    from .formats import DatasetError

    try:
        if analysis_type == "MODEL_QUALITY" or "sagemakerMergeJson" in env.get(
                "dataset_format", ""):
            from .model_quality import run
        elif analysis_type == "DATA_QUALITY":
            from .data_quality import run  # type: ignore[no-redef]
        else:
            raise DatasetError(f"analysis_type {analysis_type!r} must be DATA_QUALITY or "
                               "MODEL_QUALITY.")
        message = run(env)
    except (DatasetError, BaselineError) as error:
        reason = f"ClientError: {error}"
        print(reason, file=sys.stderr, flush=True)
        _write("failure", reason)
        return 1
    except Exception as error:  # noqa: BLE001 - any other failure ends the job with a reason
        traceback.print_exc()
        reason = f"AlgorithmError: {type(error).__name__}: {error}"
        _write("failure", reason)
        return 1
    if message:
        print(message, flush=True)
        _write("message", message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
