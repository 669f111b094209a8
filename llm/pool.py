"""Run a function over items on a few daemon threads, in a way that Ctrl-C can abandon at once."""
import queue
import threading

FINISHED = object()  # what a thread puts last on the results queue


def run_threads(fn, items: list, workers: int, on_result=lambda result: None) -> None:
    """Call fn(item) for every item on `workers` threads; on_result(result), on this thread, as each returns.

    The first exception of a call stops the handing out of items: the calls in flight finish and are
    passed on, then it is raised here. Ctrl-C (KeyboardInterrupt, raised on this thread) stops the
    handing out at once and is re-raised without waiting for the calls in flight. The threads are
    daemons for that: a thread still waiting on a hung server ends with the process, which is not held
    for the timeout (a thread pool's threads are joined when the interpreter exits).
    """
    todo, done, stop = queue.SimpleQueue(), queue.Queue(), threading.Event()
    for item in items:
        todo.put(item)

    def work():
        try:
            while not stop.is_set():
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((fn(item), None))
                except Exception as e:
                    stop.set()  # here, not on the main thread, so this thread's next item already sees it
                    done.put((None, e))
        finally:
            done.put(FINISHED)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    running, error = len(threads), None
    try:
        while running:
            try:
                # a short wait, not a blocking one: the kernel may hand SIGINT to a worker thread, and only the
                # main thread runs Python's handler, when it next wakes; a blocking get() could sleep through it
                entry = done.get(timeout=0.1)
            except queue.Empty:
                continue
            if entry is FINISHED:
                running -= 1
            elif entry[1] is not None:
                error = error or entry[1]
            else:
                on_result(entry[0])
    finally:
        stop.set()  # after Ctrl-C or an exception of on_result: nothing more is sent
    if error is not None:
        raise error
