"""Fixtures of the session backend tests: those shared with tests/system (sessions.py),
and the mocked logind and Xvfb screens (logind_fixtures.py)."""

from tests.backends.logind_fixtures import logind, screens  # noqa: F401
from tests.backends.sessions import account, rfb, runtime_dir, sessions  # noqa: F401
