"""Emulator fixtures the driver tests use besides the stores'."""

from tests.emulators.s3 import s3_server_url  # noqa: F401
