"""Capturing a decode step as a CUDA graph: warmed up on a side stream (compiling it, when compiled),
then recorded once, so each later step is one replay instead of hundreds of kernel launches."""

from __future__ import annotations

from typing import Any, Callable


def capture(step: Callable[[], Any], stats: dict[str, int]) -> tuple[Any, Any]:
    """Warm ``step`` up on a side stream, then capture it as a CUDA graph; returns the graph and the
    output tensor its replays write."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up writes K/V at the current positions, rewritten by real steps
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    stats["graph_captures"] += 1
    return graph, out
