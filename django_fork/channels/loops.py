"""
The event loop that runworker and runstack run on.

"auto" picks uvloop when it is installed, as uvicorn's --loop auto does, and
asyncio's own loop otherwise. Nothing in the channel path depends on which:
the choice only changes how much each wake-up and socket write costs.
"""

import asyncio
import importlib.util

LOOP_CHOICES = ("auto", "asyncio", "uvloop")


def resolve_loop(name="auto"):
    """Return "asyncio" or "uvloop" for a --loop choice."""
    if name not in LOOP_CHOICES:
        raise ValueError(
            "Unknown event loop %r; choose one of %s." % (name, ", ".join(LOOP_CHOICES))
        )
    if name == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return name


def run(main, loop="auto"):
    """Run the coroutine main on a new event loop of the chosen kind."""
    if resolve_loop(loop) == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
