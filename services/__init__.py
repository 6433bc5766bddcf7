"""The five iotsuite services, one package each."""
