"""Helpers behind the notebooks: data, networks, training steps, metrics, plots and batch runs."""
