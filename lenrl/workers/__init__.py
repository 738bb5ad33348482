"""Ray orchestration of the plain engine and learner objects (the only place besides `train.py` that imports ray)."""
