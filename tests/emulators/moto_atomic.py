"""moto's server with S3's conditional writes made atomic, as they are on S3.

moto checks a PUT's ``If-None-Match``/``If-Match`` and stores the object later, with no
lock in between (``../shared`` measurements; seen here as a lost compare-and-swap update
under a loaded parallel CI run). S3 evaluates the condition and the write as one step, so
the tests start moto through this file: it serialises moto's object PUT and POST
(CompleteMultipartUpload) handlers, and otherwise runs ``moto_server`` unchanged.
Run as a script (``python moto_atomic.py -H 127.0.0.1 -p PORT``), never imported by tests.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

from moto.s3.responses import S3Response
from moto.server import main

_WRITE = threading.Lock()


def _serialised(handler: Any) -> Any:
    @functools.wraps(handler)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _WRITE:  # condition check and store as one step
            return handler(self, *args, **kwargs)

    return locked


S3Response._key_response_put = _serialised(S3Response._key_response_put)  # type: ignore[method-assign]
S3Response._key_response_post = _serialised(S3Response._key_response_post)  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
