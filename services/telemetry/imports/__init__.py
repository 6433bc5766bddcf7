"""File import for telemetry: upload batches, uploaded files, their error logs, and the importer."""
