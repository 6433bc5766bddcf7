"""The analytics service: detector state, anomalies and correlation results."""
