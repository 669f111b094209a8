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
    Ctrl-C exits 130 without a traceback, and a closed pipe (`| head -1`) ends quietly."""
    import os
    import sys

    try:
        code = main()
        sys.stdout.flush()
        sys.exit(code if isinstance(code, int) else 0)
    except UserError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # the reader left: point stdout at /dev/null so Python's own flush at exit has nowhere to fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
