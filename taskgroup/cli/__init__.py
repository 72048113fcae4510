"""Command-line entry point: `taskgroup VERB ...`.

Each verb lives in its own module and registers itself on `app`. Modules import heavy
libraries (torch, onnx) inside the command functions, so `taskgroup select` starts fast.
A `TaskgroupError` becomes a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import signal
import sys
import threading

from taskgroup.cli.app import app
from taskgroup.errors import TaskgroupError

# Command modules, in the order of the workflow: importing one registers its verb(s) on `app`.
from taskgroup.cli import train as _train  # noqa: F401,E402
from taskgroup.cli import pipeline as _pipeline  # noqa: F401,E402
from taskgroup.cli import profile as _profile  # noqa: F401,E402
from taskgroup.cli import select as _select  # noqa: F401,E402
from taskgroup.cli import frontier as _frontier  # noqa: F401,E402
from taskgroup.cli import export as _export  # noqa: F401,E402
from taskgroup.cli import doctor as _doctor  # noqa: F401,E402


class Interrupted(BaseException):
    """Ctrl-C. Not a KeyboardInterrupt, which click swallows into a bare exit code, and not an
    Exception, so that `except Exception` blocks cannot mistake it for a failure."""


def _on_sigint(signum, frame) -> None:
    raise Interrupted()


def main(argv: list[str] | None = None) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        app(args=argv, prog_name="taskgroup")
    except TaskgroupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a path that is a file, a full disk, a permission: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    except (Interrupted, KeyboardInterrupt):
        print("interrupted; finished work is kept (re-run with --resume where supported)", file=sys.stderr)
        sys.exit(130)
