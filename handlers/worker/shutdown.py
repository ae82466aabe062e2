"""Pool processes leave stopping to the worker's main process: they obey SIGTERM only from it.

A SIGTERM to the whole process group (`kill -TERM -<pgid>`, a supervisor's stop-as-group, honcho,
systemd's default KillMode=control-group) reaches the pool processes as well as the main one. Each pool
process then quit on its own, at whatever point of billiard's protocol it was: running handlers were
cut off (the warm shutdown the main process had just begun could not let them finish), the main process
logged `ERROR ... ForkPoolWorker-1 ... exited with 'signal 15 (SIGTERM)'`, and on the embedded broker
(billiard's threaded pool, whose pool processes share one inqueue and one outqueue guarded by
cross-process locks) a pool process that died holding one of those locks left it locked for good: the
main process then hung forever, at exit in `Pool._help_stuff_finish` (`inqueue._rlock.acquire()`,
called from multiprocessing's `_exit_function`) or in `Pool.join` behind the task handler blocked on
the outqueue's write lock.

So in every pool process SIGTERM is blocked, and one thread takes it with sigwaitinfo(), which tells who
sent it. From anyone else it is ignored: the main process's warm shutdown stops the pool process after
its current task. From the main process (billiard's own uses: cold shutdown, revoke(terminate=True), the
nudge after a pool process reports its exit) it is passed to the pool process's main thread, interrupting
what that thread waits in, and does exactly what it did before (billiard's handler: SystemExit there).
The pool processes still die with the main process (Celery sets PR_SET_PDEATHSIG=SIGKILL in them).

The blocked signal mask is inherited by programs a handler starts (subprocess): such a program ignores
a SIGTERM until it unblocks it, so stop one with Popen.kill(), or start it with
`preexec_fn=suprhook.handlers.worker.shutdown.unblock_sigterm`.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("suprhook.worker")
_OBEY = getattr(signal, "SIGRTMIN", 34) + 7  # a real-time signal neither Celery nor billiard uses


def unblock_sigterm() -> None:
    """Undo the pool process's SIGTERM block in the calling thread (e.g. as a subprocess preexec_fn)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _watch(parent: int, main: int) -> None:
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent:
            break
        log.debug("pool process %d: SIGTERM from pid %d ignored; the main process stops the pool",
                  os.getpid(), info.si_pid)
    # The main process means it. Its SIGTERM must act in this process's main thread, which runs the task
    # (billiard's handler raises SystemExit there, so `finally:` blocks run), and interrupt whatever that
    # thread waits in: a signal to that thread does both, and the handler below passes the SIGTERM on.
    signal.pthread_kill(main, _OBEY)


def _obey(_signum: int, frame: object) -> None:
    """In the main thread, on the main process's SIGTERM: from now on SIGTERM does what it did before
    (billiard's handler, or the default action), starting with this one."""
    unblock_sigterm()
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        handler(signal.SIGTERM, frame)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGTERM)  # only this thread takes it now: the default action, exit -15


def guard_pool_process(**_: object) -> None:
    """worker_process_init: take SIGTERM away from everything but the main process (see the module)."""
    if not hasattr(signal, "sigwaitinfo"):  # not on macOS/Windows: keep Celery's behaviour there
        return
    signal.signal(_OBEY, _obey)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by every thread started later
    threading.Thread(target=_watch, args=(os.getppid(), threading.get_ident()), name="suprhook-sigterm",
                     daemon=True).start()


def install() -> None:
    """Connect the guard to Celery's worker_process_init (connecting it again changes nothing)."""
    from celery.signals import worker_process_init

    worker_process_init.connect(guard_pool_process, weak=False)


def die_with_parent(sig: int = signal.SIGTERM):
    """A subprocess preexec_fn: the child gets `sig` when the thread that started it exits (Linux
    PR_SET_PDEATHSIG; elsewhere a no-op), so it never outlives its parent, even one SIGKILLed. Start the
    child from the main thread: the signal fires when the starting *thread* exits."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return lambda: None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only makes the call
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above: nobody will signal us
            os.kill(os.getpid(), sig)

    return preexec
