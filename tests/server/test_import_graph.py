"""The server's parts import one another without cycles, and say why they import late."""

from __future__ import annotations

from tests.server.import_graph import cycles, edges, unexplained_function_imports


def test_the_server_parts_import_one_another_without_a_cycle() -> None:
    """No two parts of skillwire.server (subpackages, top-level modules) import each other,
    directly or around a loop, imports inside functions included."""
    graph = edges()
    assert {"auth", "channels", "http", "_config"} <= graph.keys()  # the graph was read
    assert cycles(graph) == []


def test_the_graph_points_from_the_edges_down() -> None:
    """http assembles the channels; the channels and auth do not reach back up to http, and
    the configuration depends on nothing of the server."""
    graph = edges()
    assert "channels" in graph["http"]
    assert "http" not in graph["channels"]
    assert "http" not in graph["auth"] and "channels" not in graph["auth"]
    assert graph["_config"] == set()


def test_every_import_inside_a_function_says_why() -> None:
    """An import inside a function carries a comment saying why it is not at the top."""
    assert unexplained_function_imports() == []


def test_the_cycle_finder_finds_a_loop() -> None:
    """The check can fail: a three-part loop and a pair are reported, a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []
