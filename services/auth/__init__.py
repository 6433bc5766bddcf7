"""The auth service: accounts, sessions, tokens and the suite's signing keys."""
