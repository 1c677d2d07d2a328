"""cairnflow: durable workflows checkpointed to your own object store.

The executor and the checkpoint protocol live in :mod:`cairnflow.core`
(standard library only); one backend per store lives in
:mod:`cairnflow.savers`. Importing this package imports neither.
"""

__version__ = "0.1.0"
