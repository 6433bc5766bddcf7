"""Alert rules: conditions on anomalies, silent devices and readings, and their messages."""
