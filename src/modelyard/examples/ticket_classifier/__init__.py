"""The support-ticket classifier of DESIGN.md §2: scripts that run inside SageMaker jobs."""

from pathlib import Path

SCRIPTS = Path(__file__).parent
PREPROCESSING = SCRIPTS / "preprocessing.py"
