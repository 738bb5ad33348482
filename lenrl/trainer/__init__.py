"""The training loop and the learner (named `trainer`: a `train/` package would clash with `train.py`)."""
