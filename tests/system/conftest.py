"""Fixtures of the OS adapter tests: the real-session ones are shared with tests/backends."""

from tests.backends.sessions import account, runtime_dir, sessions  # noqa: F401
