"""The metadata store's schema revisions, oldest first: ``0001_baseline.py``, ``0002_...``."""
