"""The auth service's revisions, oldest first by their ``down_revision``."""
