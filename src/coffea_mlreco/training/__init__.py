"""Training of the shipped models (`coffea-mlreco train ...`)."""
