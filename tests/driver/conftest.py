"""Emulator fixtures the driver tests use besides the stores'."""

from tests.emulators.azure_queue import azure_queue_service  # noqa: F401
from tests.emulators.cloudtasks import cloud_tasks  # noqa: F401
from tests.emulators.s3 import s3_server_url  # noqa: F401
