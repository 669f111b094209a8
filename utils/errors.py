"""Errors that reach the user as one readable line on stderr and a non-zero exit."""


class UserError(Exception):
    """Bad input or a missing resource: the message says what is wrong and what to do."""


class DataError(UserError):
    """The data set is missing, unreadable or malformed."""


class CheckpointError(UserError):
    """The checkpoint is missing, corrupt, foreign or does not match its model."""


class InvalidNameError(UserError):
    """A name that cannot be classified (empty, or no letters left after normalisation)."""


def run_script(main) -> None:
    """Run a script's main() and exit with its code: a UserError is one line on stderr and exit 1,
    Ctrl-C exits 130 at once without a traceback, and a closed pipe (`| head -1`) ends quietly."""
    import atexit
    import gc
    import os
    import signal
    import sys

    # At exit the interpreter's collector passes over every object alive, torch's hundreds of thousands included:
    # most of the 0.6 s a one-name `predict.py` spent exiting (0.15 s now). Frozen, they are skipped (and freed
    # with the process, as they would be); exit handlers registered before this one still run after it, and
    # files are still flushed and closed.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    try:
        code = main()
        sys.stdout.flush()
        sys.exit(code if isinstance(code, int) else 0)
    except UserError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt as e:
        # os._exit, not sys.exit: the interpreter's teardown takes a while once torch is loaded, and Ctrl-C means
        # now. Nothing is lost: every file is written atomically and the LLM cache commits each answer as it
        # arrives; threads still waiting on a server end with the process. A second Ctrl-C ends it at once.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if "multiprocessing" in sys.modules:
            # what multiprocessing's own exit handler would have done: end a pool's processes and free its
            # semaphores, which os._exit would leave to its resource tracker ("leaked semaphore objects")
            from multiprocessing import util
            util._exit_function()
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except BrokenPipeError:
        # the reader left: point stdout at /dev/null so Python's own flush at exit has nowhere to fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
