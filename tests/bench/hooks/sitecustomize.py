"""Imported by every Python process of a benchmark server (this folder is on PYTHONPATH).

It points firebase-admin at the benchmark's auth backend (``tests/bench/firebase_urls.py``)
before any app is built, in ``imperfect serve``'s supervisor and in every worker it spawns.
"""

from tests.bench.firebase_urls import point_firebase_admin

point_firebase_admin()
