"""Volume estimators. Each is one function returning an Estimate (see volume.estimate)."""
