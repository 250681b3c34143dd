"""The release version, reported by --version and in READY/HELLO."""

VERSION = "0.1.0"
