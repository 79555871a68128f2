"""Shared by the unit tests and the nbval kernels (which inherit this environment)."""
import os

# Smoke mode: the notebooks shrink step counts and sizes, never what deterministic cells print.
os.environ.setdefault("COURSE_SMOKE", "1")
# The stored outputs were made on tiny Shakespeare; a learner's own text would not match them.
os.environ.pop("COURSE_DATA", None)
