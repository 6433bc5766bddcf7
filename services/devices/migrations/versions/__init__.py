"""The devices service's revisions, oldest first by their ``down_revision``."""
