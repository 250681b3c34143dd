"""CURVE key files and client-side socket security, shared by the broker, workers and submitters."""
