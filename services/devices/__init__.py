"""The devices service: devices, their locations, status and credentials."""
