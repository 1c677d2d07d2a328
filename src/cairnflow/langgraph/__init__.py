"""LangGraph checkpointer on any cairnflow store: ``from cairnflow.langgraph import LangGraphSaver``.

Importing this package imports LangGraph (``pip install "cairnflow[langgraph]"``);
nothing else in cairnflow does.
"""

from cairnflow.langgraph.saver import LangGraphSaver, PruneRefusedError

__all__ = ["LangGraphSaver", "PruneRefusedError"]
