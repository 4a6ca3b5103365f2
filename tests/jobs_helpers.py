"""Helpers for job tests: an SDK session bound to the test server, and waiting on jobs."""

from __future__ import annotations

import os
import random
import time

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def sdk_session():
    import sagemaker

    return sagemaker.Session()


def wait_for_status(describe, field: str, wanted: set[str], timeout: float = 120) -> dict:
    """Poll a Describe call faster than the SDK does, until the job reaches ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        description = describe()
        if description[field] in wanted:
            return description
        if time.monotonic() > deadline:
            raise AssertionError(f"{field} still {description[field]} after {timeout}s")
        time.sleep(0.2)


# Three ticket categories with their own vocabulary: enough for fastText to learn.
TOPICS = {
    "network": "router dhcp wifi ethernet lease gateway dns vpn packet switch modem",
    "printer": "toner paper jam tray cartridge spooler duplex scan fuser ink queue",
    "screen": "monitor flicker resolution hdmi brightness pixel display refresh cable panel",
}


def fasttext_lines(count: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for index in range(count):
        label = list(TOPICS)[index % len(TOPICS)]
        words = TOPICS[label].split() + "the my is not after today please help".split()
        lines.append(f"__label__{label} " + " ".join(rng.choice(words) for _ in range(12)))
    return "\n".join(lines) + "\n"
