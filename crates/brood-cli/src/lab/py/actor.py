# brood lab: the parent's role in each scenario, played by CPython.
#
# Usage: actor.py KIND METHOD MODE [key=value ...]
#   KIND   process | fork | popen      (multiprocessing.Process, os.fork, subprocess.Popen)
#   METHOD fork | spawn | forkserver   (start method, for KIND=process; "-" otherwise)
#   MODE   what the parent does (see MODES below)
# and:   actor.py body NAME ARGS...    (the child's body, for KIND=popen)
#
# The script states facts, one line each on stdout, flushed: "event key=value ...".
# It never judges: the lab computes every verdict from what it observes.
# It waits for the lab's go-ahead (a line on stdin) where the lab needs to look
# at the processes first. Python 2.7 syntax on purpose: it runs on 2.7 and 3.6+.
from __future__ import print_function

import os
import signal
import subprocess
import sys
import time


def say(event, **kv):
    parts = [event] + ["%s=%s" % (k, str(kv[k]).replace(" ", "_")) for k in sorted(kv)]
    sys.stdout.write(" ".join(parts) + "\n")
    sys.stdout.flush()


def go():
    sys.stdin.readline()


# Child bodies. Module level, so that spawn and forkserver find them by name.
def body_sleep(secs, code):
    say("child_running", pid=os.getpid())
    time.sleep(float(secs))
    sys.exit(int(code))


def body_ignore_term(secs, code):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    say("child_running", pid=os.getpid(), sigterm="ignored")
    time.sleep(float(secs))
    sys.exit(int(code))


def body_grandchild(secs, code):
    g = subprocess.Popen(["sleep", "30"])
    say("child_running", pid=os.getpid())
    say("grandchild", pid=g.pid)
    time.sleep(float(secs))
    sys.exit(int(code))


BODIES = {"sleep": body_sleep, "ignore_term": body_ignore_term, "grandchild": body_grandchild}


def pool_task(i):
    if i == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return i


def context(method):
    import multiprocessing as mp
    if hasattr(mp, "get_context"):
        return mp.get_context(method)
    return mp  # Python 2.7: fork only


def start_child(kind, method, body, secs, code=0, daemon=False):
    """Starts a child running BODIES[body]; returns (handle, pid)."""
    if kind == "process":
        p = context(method).Process(target=BODIES[body], args=(secs, code))
        p.daemon = daemon
        p.start()
        return p, p.pid
    if kind == "fork":
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                BODIES[body](secs, code)
                status = 0
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 1
            finally:
                os._exit(status)
        return pid, pid
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "body", body, str(secs), str(code)])
    return p, p.pid


def wait_child(kind, h):
    """Waits for the child; its exit code in Python's convention (-N: signal N)."""
    if kind == "process":
        h.join()
        return h.exitcode
    if kind == "fork":
        _, st = os.waitpid(h, 0)
        if os.WIFSIGNALED(st):
            return -os.WTERMSIG(st)
        return os.WEXITSTATUS(st)
    return h.wait()


def leave(how, code=0):
    say("main_done", how=how)
    if how == "os_exit":
        os._exit(code)
    if how == "sys_exit":
        sys.exit(code)
    # "return": fall off the end of the program


def mode_exit(kind, method, a):
    """P1/P2/F1/F2/S1/S2: one child still running when the main logic is done."""
    daemon = a.get("daemon") == "1"
    h, pid = start_child(kind, method, a.get("body", "sleep"), a.get("secs", "1.0"), daemon=daemon)
    say("child", pid=pid, daemon=int(daemon))
    go()
    leave(a.get("how", "return"))


def mode_mixed(kind, method, a):
    """X1/X2/N6: one daemon=False child (short) and one daemon=True child (long)."""
    h1, p1 = start_child(kind, method, "sleep", a.get("secs", "0.8"), daemon=False)
    say("child", pid=p1, daemon=0)
    h2, p2 = start_child(kind, method, "sleep", "30", daemon=True)
    say("child", pid=p2, daemon=1)
    if a.get("how") == "sigint":
        # N6: the lab sends SIGINT to this pid alone; KeyboardInterrupt rises here.
        say("ready")
        while True:
            time.sleep(60)
    go()
    leave(a.get("how", "return"))


def mode_signal_parent(kind, method, a):
    """P3/F4/S3, parent side: children live; the lab signals the parent."""
    keep = [start_child(kind, method, "sleep", "30", daemon=False)]
    if kind == "process":
        keep.append(start_child(kind, method, "sleep", "30", daemon=True))
    for i, (h, pid) in enumerate(keep):
        say("child", pid=pid, daemon=i)
    say("ready")
    while True:
        time.sleep(60)


def mode_signal_child(kind, method, a):
    """P3/F4/S3, child side: the lab signals the child; the parent waits for it."""
    h, pid = start_child(kind, method, "sleep", "30")
    say("child", pid=pid)
    code = wait_child(kind, h)
    say("child_exit", pid=pid, exitcode=code)
    say("parent_alive", pid=os.getpid())
    go()
    leave("return")


def mode_zombie(kind, method, a):
    """P4/F5/S4: a child that ends (by itself, or killed by the lab), never waited for."""
    h, pid = start_child(kind, method, "sleep", a.get("secs", "0"))
    say("child", pid=pid)
    go()
    leave("return")


def mode_os_wait(kind, method, a):
    """P5: a daemon child that ends; the parent waits with os.wait/os.waitpid/join."""
    how = a.get("wait", "wait")
    h, pid = start_child(kind, method, "sleep", "0.1", daemon=True)
    say("child", pid=pid, daemon=1)
    try:
        if how == "wait":
            got, st = os.wait()
        elif how == "waitpid":
            got, st = os.waitpid(pid, 0)
        else:
            h.join()
            got, st = pid, h.exitcode
        say("waited", how=how, pid=got, status=st)
    except OSError as e:
        say("wait_error", how=how, errno=e.errno, type=type(e).__name__)
    leave("return")


def mode_starting(kind, method, a):
    """N2: the lab SIGKILLs the parent as soon as start() returns."""
    h, pid = start_child(kind, method, "sleep", "1.5")
    say("child", pid=pid)
    while True:
        time.sleep(60)


def mode_reaped(kind, method, a):
    """N3: someone else reaps the child; what do the parent's queries answer?"""
    if kind == "popen":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    h, pid = start_child(kind, method, "sleep", "0.1", code=3)
    say("child", pid=pid, true_exitcode=3)
    if kind == "process":
        deadline = time.time() + 1.5
        reaped = 0
        while time.time() < deadline and not reaped:
            try:
                got, st = os.waitpid(-1, os.WNOHANG)
            except OSError:
                break
            if got == pid:
                reaped = got
            time.sleep(0.01)
        say("foreign_reap", pid=reaped)
    else:
        while os.path.exists("/proc/%d" % pid):
            time.sleep(0.01)
        say("foreign_reap", pid=pid, by="SIGCHLD=SIG_IGN")
    try:
        if kind == "process":
            h.join(0.5)
            say("answer", is_alive=h.is_alive(), exitcode=h.exitcode)
        else:
            say("answer", poll=h.poll(), returncode=h.returncode)
    except Exception as e:
        say("answer_error", type=type(e).__name__)
    leave("return")


def mode_grandchild(kind, method, a):
    """N4: the child has a child of its own; the parent terminates the child."""
    h, pid = start_child(kind, method, "grandchild", "30")
    say("child", pid=pid)
    go()
    if kind == "process":
        h.terminate()
    elif kind == "fork":
        os.kill(pid, signal.SIGTERM)
    else:
        h.terminate()
    say("child_exit", pid=pid, exitcode=wait_child(kind, h))
    go()
    leave("return")


def mode_pool(kind, method, a):
    """N5: a Pool worker is SIGKILLed in the middle of a task."""
    pool = context(method).Pool(2)
    say("pool_started")
    try:
        result = pool.map(pool_task, range(4))
        say("map_done", result=",".join(str(r) for r in result))
    except Exception as e:
        say("map_error", type=type(e).__name__)
    pool.terminate()
    leave("return")


def mode_twice(kind, method, a):
    """F3: code after the child's if-block, with or without an else: branch."""
    style = a.get("style", "if")
    say("style", style=style)
    pid = os.fork()
    if style == "if":
        if pid == 0:
            say("in_child", pid=os.getpid())
        say("after_if", pid=os.getpid())
    else:
        if pid == 0:
            say("in_child", pid=os.getpid())
        else:
            say("after_if", pid=os.getpid())
    if pid != 0:
        say("child", pid=pid)
        os.waitpid(pid, 0)
        leave("return")


def mode_buffered(kind, method, a):
    """N7: a line printed while stdout is a block-buffered pipe, then a child.

    The lab runs this mode with PYTHONUNBUFFERED empty, so sys.stdout keeps the
    line in its buffer across the fork. The fork child leaves the way a script
    does, through the interpreter's normal exit (which flushes sys.stdout).
    """
    sys.stdout.write("before_fork pid=%d\n" % os.getpid())  # no flush, on purpose
    if kind == "fork":
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
    else:
        p = context(method).Process(target=body_sleep, args=("0", "0"))
        p.start()
        pid = p.pid
        p.join()
    say("child", pid=pid)
    leave("return")


def mode_exit_signals(kind, method, a):
    """N8: two daemon children; the parent reaps the first itself with
    os.waitpid, then returns: its exit handlers decide whom to signal."""
    h1, p1 = start_child(kind, method, "sleep", "0.1", daemon=True)
    say("child", pid=p1, daemon=1, role="reaped")
    h2, p2 = start_child(kind, method, "sleep", "30", daemon=True)
    say("child", pid=p2, daemon=1, role="running")
    try:
        got, st = os.waitpid(p1, 0)
        say("waited", how="waitpid", pid=got, status=st)
    except OSError as e:
        say("wait_error", how="waitpid", errno=e.errno, type=type(e).__name__)
    # Whoever reaped it (this process, or a fork server), it is gone from
    # /proc before the exit handlers run: a signal to its pid then finds no
    # such process, or a newcomer that got the pid.
    deadline = time.time() + 2
    while os.path.exists("/proc/%d" % p1) and time.time() < deadline:
        time.sleep(0.01)
    say("first_gone", pid=p1, gone=int(not os.path.exists("/proc/%d" % p1)))
    go()  # the lab attaches its tracer first
    leave("return")


def mode_implicit(kind, method, a):
    """N9: a child ended and not waited for; does this call end the zombie?"""
    import gc
    via = a.get("via", "poll")
    secs = "0.6" if via == "del_running" else "0"
    h, pid = start_child(kind, method, "sleep", secs)
    say("child", pid=pid)
    go()  # the lab has seen the zombie (or, for del_running, the child running)
    h2 = None
    if via == "start_another":
        h2, p2 = start_child(kind, method, "sleep", "30")
        say("other", pid=p2)
    elif via == "active_children":
        import multiprocessing as mp
        say("answer", n=len(mp.active_children()))
    elif via == "is_alive":
        say("answer", is_alive=h.is_alive())
    elif via == "exitcode":
        say("answer", exitcode=h.exitcode)
    elif via == "poll":
        say("answer", poll=h.poll())
    elif via == "new_popen":
        h2, p2 = start_child(kind, method, "sleep", "30")
        say("other", pid=p2)
    elif via in ("del_gc", "del_running", "del_exited"):
        del h
        gc.collect()
    say("acted", via=via)
    go()
    if h2 is not None:
        # The other child has done its part; ended here, the parent's exit
        # does not wait out its sleep (a daemon=False Process is joined at exit).
        h2.terminate()
        if kind == "process":
            h2.join()
        else:
            h2.wait()
    leave("return")


MODES = {
    "exit": mode_exit, "mixed": mode_mixed, "signal_parent": mode_signal_parent,
    "signal_child": mode_signal_child, "zombie": mode_zombie, "os_wait": mode_os_wait,
    "starting": mode_starting, "reaped": mode_reaped, "grandchild": mode_grandchild,
    "pool": mode_pool, "twice": mode_twice, "buffered": mode_buffered,
    "exit_signals": mode_exit_signals, "implicit": mode_implicit,
}


def main(argv):
    if argv[1] == "body":
        BODIES[argv[2]](*argv[3:])
        return
    kind, method, mode = argv[1], argv[2], argv[3]
    a = dict(x.split("=", 1) for x in argv[4:])
    say("parent", pid=os.getpid(), python="%d.%d.%d" % sys.version_info[:3], kind=kind, method=method)
    MODES[mode](kind, method, a)


if __name__ == "__main__":
    main(sys.argv)
