"""Keras callbacks that show what the optimizers do during training (work in progress)."""
