"""Dataset annotations and (in dataset.py) the training dataset."""
