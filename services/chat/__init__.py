"""The chat service: chat sessions, messages, escalations and the FAQ knowledge base."""
