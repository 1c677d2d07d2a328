"""``python -m cairnflow.cli``: the same as the ``cairnflow`` command."""

from cairnflow.cli.app import main

raise SystemExit(main())
