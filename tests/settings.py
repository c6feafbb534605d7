"""Settings for the test suite: the real settings, with run-time files under var/test and the
embedded Redis on a short socket path (unix socket paths are limited to 107 bytes)."""

import hashlib
import os
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
os.environ.setdefault("VAR_DIR", str(_root / "var" / "test"))
_tag = hashlib.sha1(str(_root).encode()).hexdigest()[:8]
TEST_REDIS_SOCKET = Path(f"/tmp/labelling-test-{os.getuid()}-{_tag}/redis.sock")
if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = f"redis+socket://{TEST_REDIS_SOCKET}"

from labelling.settings import *  # noqa: E402,F403
from labelling.settings import DATABASES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so a real worker process can see what the tests write.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or VAR_DIR / "media")
