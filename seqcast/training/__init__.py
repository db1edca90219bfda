"""Training: the loop, early stopping, divergence handling and the learning-rate finder."""
