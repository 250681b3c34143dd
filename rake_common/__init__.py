"""Settings shared by rake's three programs: configuration files and log output."""
