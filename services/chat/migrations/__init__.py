"""The chat service's schema migrations (Alembic): one module per revision in ``versions/``,
applied by ``iotkit.migrations`` (see ``MIGRATIONS`` in ``services.chat.wiring``)."""
