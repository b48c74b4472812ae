"""Local stand-ins for external services (Slack, ...) used by tests and the demo."""
