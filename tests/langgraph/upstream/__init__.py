"""LangGraph's own test suite run against cairnflow (scripts/langgraph-upstream-tests.sh)."""
