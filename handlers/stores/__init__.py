"""Local and remote stores: event log, dedup, conversations, Usermaven outbox, the embedded broker's SQLite file."""
