"""torchrun as `specc run` starts it for a run over several processes (``python -m
specc.runtime.torchrun ARGS``, torchrun's own arguments). A signal (a cluster's preemption,
Ctrl-C) is passed to the ranks by torchrun's agent, which waits for them to save their
checkpoint; this then exits 130 (interrupted: run again to resume), as one process does,
instead of printing the agent's traceback. Other failures are torchrun's own report."""

from __future__ import annotations

import sys

from specc.runtime.execute import EXIT_INTERRUPTED


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv)
    except SignalException:
        return EXIT_INTERRUPTED
    except ChildFailedError as exc:
        if {f.exitcode for f in exc.failures.values()} == {EXIT_INTERRUPTED}:
            return EXIT_INTERRUPTED
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
