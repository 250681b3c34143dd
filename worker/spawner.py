"""The worker's spawner: starts actions when the worker asks, reaps every process, reports
how each action ended, and kills what an action leaves.

Runs standalone (standard library only, `python -I -S spawner.py FD`): as PID 1 under
`unshare --pid --fork --kill-child --mount-proc`, so /proc here shows this namespace only;
or, where namespaces are not allowed, as a plain child of the worker that adopts what its
actions leave (a child subreaper) and kills every action when the worker goes. Either way
the limits are applied here once, not in every child. Requests and replies are JSON
datagrams on a SOCK_SEQPACKET socket; a run request carries the action's stdin, stdout and
stderr as passed file descriptors.
"""

import array
import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
import time

MAX_REQUEST = 1 << 20
FD_SIZE = array.array("i").itemsize
# Python ignores SIGPIPE and SIGXFSZ, we ignore the others (see main()), and a worker started
# in the background by a shell script ignores SIGINT and SIGQUIT; an action must not inherit
# any of that (`yes | head`, a file size limit, `kill $!`): every signal is back at its
# default, and none blocked.
IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_SIGNALS = tuple(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})
PR_SET_CHILD_SUBREAPER = 36
UNSURE_TRIES, UNSURE_WAIT = 20, 0.0005   # an environment-less process is re-read for up to 10 ms


def send(sock, message):
    try:
        sock.send(json.dumps(message).encode())
    except OSError:
        sys.exit(0)   # the worker is gone: leaving takes every action with us


def leftovers(label, skip, everywhere=False):
    """Processes still carrying RAKE_JOB=label (double forks that left the group). The
    running actions' own shells (`skip`) cannot be among them and are not read. Once the
    job's shell has ended, what it left can only hang below us, so a namespace holding
    nothing else costs one read of our children; `everywhere` also looks under the running
    shells (a job being killed may have put processes in their own sessions below its own)."""
    if not everywhere and not orphans(skip):
        return []
    marker = f"RAKE_JOB={label}\0".encode()
    found, unsure = [], [pid for pid in descendants() if pid not in skip]
    # A process that is execing shows no environment for a moment (its new one is not set up
    # yet), and one is often doing just that as its shell exits: read those again shortly.
    for attempt in range(UNSURE_TRIES):
        if attempt:
            time.sleep(UNSURE_WAIT)
        unsure = [pid for pid in unsure if carries(pid, marker, found)]
        if not unsure:
            break
    return found


def carries(pid, marker, found):
    """Add `pid` to `found` if its environment has `marker`; True if there was none to read
    and it is running (so probably mid-exec): ask again. One that cleared its environment
    sleeps, a zombie or a process gone has nothing to kill: those are not asked again."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            env = fh.read()
        if not env:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().rsplit(b")", 1)[1].split()[0] in (b"R", b"D")
    except (OSError, IndexError):
        return False
    if marker in env + b"\0":
        found.append(pid)
    return False


def descendants():
    """Every process below us: in a namespace, all of them; without one, all our actions
    can have left (we adopt them) and nothing else, however it is named."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    state, parent = fh.read().rsplit(b")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != b"Z":   # ended, to be reaped: nothing to kill, and no children
                children.setdefault(int(parent), []).append(int(name))
    found, todo = [], [os.getpid()]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def orphans(running):
    """Whether any process here is not under a running action's shell. Every process an
    action leaves descends from us (in a namespace; or adopted, as a subreaper), so one that
    is not has a child of ours as its top: when our children are just the running shells,
    nothing was left and /proc need not be read."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as fh:
            children = fh.read().split()
    except OSError:
        return True
    return any(int(pid) not in running for pid in children)


def kill_everything():
    """Kill every process below us (a few rounds, for those forking meanwhile)."""
    for _ in range(10):
        below = descendants()
        if not below:
            return
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def kill_job(pid, label, running, everywhere=False):
    """Kill the job's group and its leftovers; how many were left (a fork bomb takes rounds)."""
    found = leftovers(label, running, everywhere)
    left, rounds = len(found), 0
    while rounds == 0 or (found and rounds < 10):
        for target in [-pid, *found]:
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        found, rounds = (leftovers(label, running, everywhere) if found else []), rounds + 1
    return left


def start(request, fds):
    actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(fds[:3])]
    try:
        return os.posix_spawn(request["argv"][0], request["argv"], request["env"],
                              file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGNALS,
                              setsigmask=())
    finally:
        for fd in fds:
            os.close(fd)


def receive(sock, buf):
    """(request, passed descriptors) of the next datagram, read into `buf`: a fresh 1 MiB
    buffer per request (as socket.recv_fds makes) cost more than the rest of the read."""
    # Close-on-exec: an action gets them only as its stdin, stdout and stderr (dup2 clears it).
    size, ancdata, _, _ = sock.recvmsg_into([buf], socket.CMSG_LEN(4 * FD_SIZE), socket.MSG_CMSG_CLOEXEC)
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % FD_SIZE])
    return buf[:size], list(fds)


def serve(sock, wake, running):
    """Until the worker closes its end; `running` maps pid -> (request id, label)."""
    buf = bytearray(MAX_REQUEST)
    while True:
        ready, _, _ = select.select([sock, wake], [], [])
        if wake in ready:
            os.read(wake, 4096)
            reap(sock, running)
        if sock in ready:
            try:
                data, fds = receive(sock, buf)
            except OSError:
                return
            if not data:
                return
            handle(sock, json.loads(bytes(data).decode("utf-8", "surrogateescape")), fds, running)


OWN_UMASK = os.umask(0o022)   # read once: an action asking for the same one costs no system call
os.umask(OWN_UMASK)


def handle(sock, request, fds, running):
    if request["op"] == "run":
        umask = request.get("umask")   # one thread: nobody else sees it while set
        old = os.umask(umask) if umask is not None and umask != OWN_UMASK else None
        try:
            os.chdir(request["cwd"])
            pid = start(request, fds)
        except (OSError, ValueError) as e:   # ValueError: e.g. a NUL byte exec() cannot take
            send(sock, {"id": request["id"], "error": f"{getattr(e, 'strerror', None) or e}"})
            return
        finally:
            if old is not None:
                os.umask(old)
        running[pid] = (request["id"], request["label"])
    elif request["op"] == "kill":
        for pid, (rid, label) in running.items():
            if rid == request["id"]:
                kill_job(pid, label, running, everywhere=True)
    elif request["op"] == "pause":   # Ctrl-Z of the submitter whose embedded worker we serve
        for pid in running:
            try:
                os.killpg(pid, signal.SIGCONT if request["resume"] else signal.SIGSTOP)
            except OSError:
                pass


def reap(sock, running):
    ended, alone = [], False
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            # Nothing at all is left in the namespace (orphans would be our children), so
            # no action left anything behind: no need to look.
            alone = True
            break
        if pid == 0:
            break
        if pid in running:
            ended.append((pid, status, *running.pop(pid)))
    for pid, status, rid, label in ended:
        left = 0 if alone else kill_job(pid, label, running)   # what it left goes with it
        send(sock, {"id": rid, "status": status, "left": left})
    if ended and not running and not alone:
        kill_everything()   # nothing runs: whatever is still below us escaped its job's name


def bind_to_limits(text):
    """Apply the worker's limits (worker/limits.py) here once: every action inherits them."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "rake_limits", os.path.join(os.path.dirname(os.path.abspath(__file__)), "limits.py"))
    limits = importlib.util.module_from_spec(spec)
    sys.modules["rake_limits"] = limits   # dataclasses looks the module up by name
    spec.loader.exec_module(limits)
    limits.apply(limits.Limits.from_json(text))


def main():
    # Not inherited by actions: one holding it could forge our replies about other actions,
    # and would keep the worker from seeing that we died.
    os.set_inheritable(int(sys.argv[1]), False)
    sock = socket.socket(fileno=int(sys.argv[1]))
    if len(sys.argv) > 2:
        bind_to_limits(sys.argv[2])
    # The worker took more open files than it was given (rake_common/entry.py): actions get
    # what it was given, as a shell's ulimit -n would have had them run.
    given = os.environ.get("RAKE_GIVEN_NOFILE", "")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if given.isdigit() and (hard == resource.RLIM_INFINITY or int(given) <= hard):   # else setrlimit raises
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(given), hard))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # As PID 1 of the namespace only signals with a handler reach us from inside it; Python's
    # SIGINT handler would let any action end the namespace with `kill -INT 1`. Without a
    # namespace we are our actions' parent: `kill $PPID` must not end us either. The worker
    # stops us by closing the socket (or SIGKILL).
    for number in IGNORED:
        signal.signal(number, signal.SIG_IGN)
    plain = os.getpid() != 1   # no namespace to take everything with it when we go
    if plain:
        become_subreaper()
    running = {}
    try:
        send(sock, {"ready": True})
        serve(sock, wake_r, running)
    finally:
        if plain:   # the worker is gone (or stopped): so go its actions and their leftovers
            kill_everything()


def become_subreaper():
    """What an action leaves (`sleep 100 &`, a double fork) becomes our child, not init's, so
    it is found and killed as in a namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


if __name__ == "__main__":
    main()
