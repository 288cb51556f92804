"""Machine-learned MET: candidate features, model wrappers (DeepMET-style and Perceiver)."""
