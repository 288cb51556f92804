"""Di-tau (m_ττ) reconstruction: candidate selection from NanoAOD and the inputs of the mass estimators."""
