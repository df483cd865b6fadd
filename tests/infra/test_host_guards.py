"""Model host guards, attacked: each host is forked the way the fork server forks one (numpy
already imported), applies the guards, then tries to break one of them and reports what happened.

The hosts run under one driver subprocess: this file run as a script (``python -m
tests.infra.test_host_guards BASE``), so the attacks are plain functions rather than code in
strings. It prints {host: {"status", "report", "missing", "result"}} as JSON. Needs root, like
the fork server (and the CI machine)."""

from __future__ import annotations

import ctypes
import errno
import importlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from viewer.infra.host import guards

ROOT = Path(__file__).resolve().parents[2]
MEMORY_MB, FILE_MB = 256, 8
HOSTS = {}  # name -> (attack, guarded): the driver forks one host per entry


def host(guarded: bool = True):
    def register(attack):
        HOSTS[attack.__name__] = (attack, guarded)
        return attack
    return register


def attempt(action) -> str:
    """"ok", or the exception's name and errno: what a hostile model would have seen."""
    try:
        action()
    except Exception as exc:
        code = getattr(exc, "errno", None)
        return type(exc).__name__ + (f" {errno.errorcode[code]}" if code in errno.errorcode else "")
    return "ok"


def syscall(nr: int, *args: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    return "ok" if result != -1 else errno.errorcode[ctypes.get_errno()]


def write(path: str) -> None:
    Path(path).write_bytes(b"x")
    os.unlink(path)  # when a guard failed: leave nothing behind


def connect(address) -> None:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(address)


def spawn() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


# The hosts. Each returns what its attacks met; ctx holds the driver's files and the host's fds.

@host()
def network(ctx):
    return {
        "socket": attempt(socket.socket),
        "postgres_tcp": attempt(lambda: connect(("127.0.0.1", 5432))),
        "redis_tcp": attempt(lambda: connect(("127.0.0.1", 6379))),
        "postgres_unix": attempt(lambda: connect("/var/run/postgresql/.s.PGSQL.5432")),
        "udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)),
        "namespace": os.stat("/proc/self/ns/net").st_ino,  # stat is not a read: Landlock allows it
    }


@host()
def fds(ctx):
    def is_open(fd):
        try:
            os.fstat(fd)
        except OSError:
            return False
        return True

    return {"open": [fd for fd in range(1024) if is_open(fd)], "kept": ctx["keep"],
            "kept_reads": os.pread(ctx["kept_fd"], 100, 0).decode(), "stdin": os.read(0, 10).decode()}


@host()
def files(ctx):
    def scratch_round_trip():
        Path(os.environ["TMPDIR"], "notes.txt").write_text("mine")
        assert Path("notes.txt").read_text() == "mine"

    def temporary_file():
        with tempfile.NamedTemporaryFile() as handle:
            assert os.path.dirname(handle.name) == os.environ["TMPDIR"]

    return {
        "write_tmp": attempt(lambda: write(f"/tmp/host-guards-{os.getpid()}")),
        "write_shm": attempt(lambda: write(f"/dev/shm/host-guards-{os.getpid()}")),
        "write_open_folder": attempt(lambda: write(f"{ctx['open_folder']}/planted")),
        "read_passwd": attempt(Path("/etc/passwd").read_bytes),
        "read_secret": attempt(Path(ctx["secret"]).read_bytes),
        "read_proc": attempt(Path("/proc/self/status").read_bytes),
        "list_root": attempt(lambda: os.listdir("/")),
        "scratch": attempt(scratch_round_trip),
        "tempfile": attempt(temporary_file),
        "dev_null": attempt(lambda: Path(os.devnull).write_text("x")),
        "read_numpy": attempt(Path(np.__file__).read_bytes),            # the venv: sys.prefix
        "import_loaded": attempt(lambda: importlib.import_module("json")),
        "import_read_path": attempt(lambda: importlib.import_module("guards_fresh_module")),
        # a read path inside a folder of mode 0700 (a checkout made by mktemp -d): the host reads
        # it with the owner's file rights, and nothing else there
        "import_closed_read_path": attempt(lambda: importlib.import_module("guards_closed_module")),
        "read_closed_secret": attempt(Path(ctx["closed_secret"]).read_bytes),
        "write_closed_folder": attempt(lambda: write(f"{ctx['closed']}/planted")),
        "write_closed_read_path": attempt(lambda: write(f"{ctx['closed_library']}/planted")),
        "read_parent_environ": attempt(Path(f"/proc/{os.getppid()}/environ").read_bytes),
    }


@host(guarded=False)
def nobody_without_guards(ctx):
    """The control for ``files``: uid 65534 alone may read the secret and write the open folder,
    so only Landlock stops the guarded host."""
    os.setgroups([])
    os.setresgid(guards.UNPRIVILEGED, guards.UNPRIVILEGED, guards.UNPRIVILEGED)
    os.setresuid(guards.UNPRIVILEGED, guards.UNPRIVILEGED, guards.UNPRIVILEGED)
    return {"read_secret": attempt(Path(ctx["secret"]).read_bytes),
            "write_open_folder": attempt(lambda: write(f"{ctx['open_folder']}/planted")),
            "read_closed_read_path": attempt(Path(ctx["closed_library"], "guards_closed_module.py").read_bytes)}


@host()
def processes(ctx):
    signal.signal(signal.SIGUSR1, lambda *_: None)
    return {
        "fork": attempt(spawn),
        "subprocess": attempt(lambda: subprocess.run(["true"], check=True)),
        "exec": attempt(lambda: os.execv("/bin/true", ["true"])),
        "thread": attempt(lambda: threading.Thread(target=int).start()),
        # signal 0 checks permission only: a failed guard must not hurt the parent or init
        "signal_parent": attempt(lambda: os.kill(os.getppid(), 0)),
        "signal_init": attempt(lambda: os.kill(1, 0)),
        "signal_group": attempt(lambda: os.kill(0, 0)),
        "pidfd_parent": attempt(lambda: os.close(os.pidfd_open(os.getppid()))),
        "signal_self": attempt(lambda: os.kill(os.getpid(), 0)),
        "raise_self": attempt(lambda: signal.raise_signal(signal.SIGUSR1)),
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC),
    }


@host()
def abort(ctx):
    os.abort()  # raise(SIGABRT) is tgkill(own pid, ...): a host may still kill itself


@host()
def user(ctx):
    status = os.pread(ctx["status_fd"], 4096, 0).decode()  # opened before the guards
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return {"ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()], "groups": os.getgroups(),
            "uids": fields["Uid"].split(), "gids": fields["Gid"].split(),  # real, effective, saved, filesystem
            "setuid_root": attempt(lambda: os.setuid(0)), "setfsuid_root": syscall(122, 0),
            **{name: fields[name].strip() for name in ("CapEff", "CapPrm", "CapAmb", "NoNewPrivs", "Seccomp")}}


def is_dumpable() -> int:
    return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE


@host()
def dumpable(ctx):
    return {"dumpable": is_dumpable(), "make_dumpable": syscall(157, 4, 1)}  # prctl(PR_SET_DUMPABLE, 1)


@host()
def memory(ctx):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the oversized write kills the host
    return {
        "allocate_64": attempt(lambda: np.ones(64 << 17)),             # float64: 64 MiB
        "allocate_twice_the_limit": attempt(lambda: np.ones(2 * MEMORY_MB << 17)),
        "file_below_limit": attempt(lambda: Path("small").write_bytes(b"x" * ((FILE_MB - 1) << 20))),
        "file_above_limit": attempt(lambda: Path("big").write_bytes(b"x" * ((FILE_MB + 1) << 20))),
        "raise_limit": attempt(lambda: resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY,) * 2)),
        "core": resource.getrlimit(resource.RLIMIT_CORE),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
    }


@host()
def syscalls(ctx):
    calls = {
        "ptrace_traceme": (101, 0, 0, 0, 0), "unshare_net": (272, 0x40000000),
        "unshare_user": (272, 0x10000000), "mount": (165, 0, 0, 0, 0, 0), "setns": (308, 0, 0),
        "chroot": (161, 0), "bpf": (321, 0, 0, 0), "io_uring_setup": (425, 1, 0),
        "keyctl": (250, 0, 0), "perf_event_open": (298, 0, 0, 0, -1, 0), "userfaultfd": (323, 0),
        "init_module": (175, 0, 0, 0), "x32_getpid": (0x40000000 | 39,), "terminal_input": (16, 2, 0x5412, 0),
        "process_vm_readv": (310, os.getppid(), 0, 0, 0, 0, 0), "getpid": (39,),
    }
    return {name: syscall(*call) for name, call in calls.items()}


@host(guarded=False)
def unprivileged(ctx):
    """apply() started as nobody (a laptop without root): network and user missing, the rest holds."""
    os.setgroups([])
    os.setresgid(guards.UNPRIVILEGED, guards.UNPRIVILEGED, guards.UNPRIVILEGED)
    os.setresuid(guards.UNPRIVILEGED, guards.UNPRIVILEGED, guards.UNPRIVILEGED)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again, like a process nobody started
    report = guards.apply(scratch=ctx["scratch"], keep_fds=ctx["keep"], memory_mb=MEMORY_MB, file_mb=FILE_MB)
    return {"missing": guards.missing(report), "socket": attempt(socket.socket), "fork": attempt(spawn),
            "read_secret": attempt(Path(ctx["secret"]).read_bytes), "dumpable": is_dumpable()}


@host(guarded=False)
def threaded(ctx):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        return {"apply": attempt(lambda: guards.apply(scratch=ctx["scratch"], keep_fds=ctx["keep"],
                                                      memory_mb=MEMORY_MB, file_mb=FILE_MB))}
    finally:
        stop.set()
        thread.join()


# The driver: forks the hosts like the fork server and collects what they say.

def run_host(name: str, ctx: dict) -> dict:
    attack, guarded = HOSTS[name]
    scratch = tempfile.mkdtemp(prefix=f"{name}-", dir=ctx["base"])
    if not guarded:  # made by the caller for the host, as nobody
        os.chown(scratch, guards.UNPRIVILEGED, guards.UNPRIVILEGED)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            kept = os.open(ctx["kept"], os.O_RDONLY)
            status = os.open("/proc/self/status", os.O_RDONLY)
            os.open(ctx["kept"], os.O_RDONLY)  # not kept: the fds guard closes it
            keep = [writer, kept, status]
            out = {}
            if guarded:
                out["report"] = guards.apply(scratch=scratch, keep_fds=keep, memory_mb=MEMORY_MB, file_mb=FILE_MB,
                                             read_paths=[ctx["library"], ctx["closed_library"]])
                out["missing"] = guards.missing(out["report"])
            out["result"] = attack({**ctx, "scratch": scratch, "keep": keep, "kept_fd": kept, "status_fd": status})
        except BaseException as exc:  # the host reports everything, then exits below
            out = {"error": repr(exc)}
        data = json.dumps(out).encode()
        while data:
            data = data[os.write(writer, data):]
        os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 1 << 16):
        chunks.append(chunk)
    os.close(reader)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return {"status": status, **json.loads(b"".join(chunks) or b"{}")}


def orphan(ctx: dict) -> dict:
    """A host whose parent dies after apply() is killed (PR_SET_PDEATHSIG), not left running. The
    driver is a child subreaper, so it inherits the orphan and can see how it ended."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    to_parent, from_host = os.pipe()
    to_driver, from_parent = os.pipe()
    parent = os.fork()
    if parent == 0:
        try:
            child = os.fork()
            if child == 0:
                guards.apply(scratch=tempfile.mkdtemp(dir=ctx["base"]), keep_fds=[from_host],
                             memory_mb=MEMORY_MB, file_mb=FILE_MB)
                os.write(from_host, b"guarded")
                signal.pause()
            os.read(to_parent, 16)
            os.write(from_parent, str(child).encode())
        finally:
            os._exit(0)  # the host's parent dies (and neither goes back to the driver's code)
    os.close(from_host)
    os.close(from_parent)
    child = int(os.read(to_driver, 16))
    os.waitpid(parent, 0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            return {"status": os.waitstatus_to_exitcode(status)}
        time.sleep(0.01)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    return {"status": "still running 5 s after its parent died"}


def drive(base: str) -> dict:
    ctx = {"base": base, "kept": f"{base}/kept.txt", "open_folder": f"{base}/open",
           "secret": f"{base}/private/secret.txt", "library": f"{base}/library", "closed": f"{base}/closed",
           "closed_library": f"{base}/closed/library", "closed_secret": f"{base}/closed/secret.txt"}
    Path(ctx["kept"]).write_text("opened before the guards")
    os.mkdir(ctx["open_folder"], 0o777)
    os.chmod(ctx["open_folder"], 0o777)  # world-writable, whatever the umask
    os.mkdir(f"{base}/private", 0o755)
    Path(ctx["secret"]).write_text("the app's data")
    os.chmod(ctx["secret"], 0o644)  # readable by anyone as far as file modes go
    os.mkdir(ctx["library"], 0o755)
    Path(ctx["library"], "guards_fresh_module.py").write_text("VALUE = 1\n")
    os.makedirs(ctx["closed_library"], 0o755)
    os.chmod(ctx["closed"], 0o700)  # what mktemp -d makes; only its owner (root) may enter
    Path(ctx["closed_library"], "guards_closed_module.py").write_text("VALUE = 2\n")
    Path(ctx["closed_secret"]).write_text("the app's data")
    sys.path += [ctx["library"], ctx["closed_library"]]
    results = {name: run_host(name, ctx) for name in HOSTS}
    results["orphan"] = orphan(ctx)
    results["driver_namespace"] = os.stat("/proc/self/ns/net").st_ino
    return results


@pytest.fixture(scope="module")
def hosts():
    base = tempfile.mkdtemp(prefix="host-guards-")  # under /tmp: reachable by uid 65534,
    os.chmod(base, 0o755)                            # unlike pytest's tmp_path
    try:
        done = subprocess.run([sys.executable, "-m", "tests.infra.test_host_guards", base], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def result(hosts, name):
    outcome = hosts[name]
    assert outcome["status"] == 0 and "error" not in outcome, outcome
    return outcome["result"]


def test_report_lists_every_guard_and_none_is_missing_on_this_machine(hosts):
    report = hosts["network"]["report"]
    assert tuple(report) == guards.GUARDS and all(report.values())
    assert hosts["network"]["missing"] == [] == guards.missing(report)
    assert report["files"].startswith("Landlock ABI ")
    # a read path lies in a folder of mode 0700 (see drive()): files are opened as its owner
    assert report["user"].startswith("uid 65534, no capabilities; opens files as uid 0, inside Landlock's paths only")
    assert "/closed (mode 0700)" in report["user"]
    assert guards.missing({"network": "missing: no root", "user": "uid 65534"}) == ["network"]


def test_network_guard_no_tcp_udp_or_unix_sockets(hosts):
    got = result(hosts, "network")
    assert got.pop("namespace") != hosts["driver_namespace"]
    assert got == {"socket": "PermissionError EPERM", "postgres_tcp": "PermissionError EPERM",
                   "redis_tcp": "PermissionError EPERM", "postgres_unix": "PermissionError EPERM",
                   "udp": "PermissionError EPERM"}


def test_fds_guard_closes_everything_but_the_kept_ones(hosts):
    got = result(hosts, "fds")
    assert got["open"] == sorted({0, 1, 2, *got["kept"]})
    assert got["kept_reads"] == "opened before the guards" and got["stdin"] == ""


def test_files_guard_writes_only_in_scratch_and_reads_only_python(hosts):
    got = result(hosts, "files")
    denied = ("write_tmp", "write_shm", "write_open_folder", "read_passwd", "read_secret", "read_proc",
              "list_root", "read_closed_secret", "write_closed_folder", "write_closed_read_path",
              "read_parent_environ")
    assert {name: got[name] for name in denied} == dict.fromkeys(denied, "PermissionError EACCES")
    allowed = ("scratch", "tempfile", "dev_null", "read_numpy", "import_loaded", "import_read_path",
               "import_closed_read_path")
    assert {name: got[name] for name in allowed} == dict.fromkeys(allowed, "ok")
    # without the guards, file modes alone would have let uid 65534 read the secret and write the
    # open folder, and kept it out of the closed folder's module
    assert result(hosts, "nobody_without_guards") == {"read_secret": "ok", "write_open_folder": "ok",
                                                      "read_closed_read_path": "PermissionError EACCES"}


def test_processes_guard_no_fork_exec_threads_or_signals_to_others(hosts):
    got = result(hosts, "processes")
    assert got.pop("nproc") == [0, 0]
    assert got.pop("signal_self") == got.pop("raise_self") == "ok"
    assert got.pop("thread") == "RuntimeError"  # can't start new thread
    assert got == dict.fromkeys(got, "PermissionError EPERM") and len(got) == 7


def test_processes_guard_still_lets_a_host_abort_itself(hosts):
    assert hosts["abort"]["status"] == -signal.SIGABRT


def test_processes_guard_host_dies_with_its_parent(hosts):
    assert hosts["orphan"]["status"] == -signal.SIGKILL


def test_user_guard_nobody_without_capabilities(hosts):
    got = result(hosts, "user")
    assert got["ids"] == [65534] * 4 and got["groups"] == []
    # only the filesystem uid stays the closed folder's owner (root), and the host cannot change it
    assert got["uids"] == ["65534"] * 3 + ["0"] and got["gids"] == ["65534"] * 4
    assert got["setuid_root"] == "PermissionError EPERM" and got["setfsuid_root"] == "EPERM"
    assert (got["CapEff"], got["CapPrm"], got["CapAmb"]) == ("0000000000000000",) * 3
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2"


def test_dumpable_guard_holds(hosts):
    assert result(hosts, "dumpable") == {"dumpable": 0, "make_dumpable": "EPERM"}
    # the drop from root clears it anyway; in a host started as nobody only the guard does
    assert result(hosts, "unprivileged")["dumpable"] == 0


def test_memory_guard_limits_allocations_and_file_sizes(hosts):
    got = result(hosts, "memory")
    assert got["allocate_64"] == "ok" and got["allocate_twice_the_limit"] == "MemoryError"
    assert got["file_below_limit"] == "ok" and got["file_above_limit"] == "OSError EFBIG"
    assert got["raise_limit"] == "ValueError"  # not allowed to raise maximum limit
    assert got["core"] == [0, 0] and got["nofile"] == [64, 64]


def test_syscalls_guard_denies_the_kernels_rarer_corners(hosts):
    got = result(hosts, "syscalls")
    assert got.pop("getpid") == "ok"
    assert got == dict.fromkeys(got, "EPERM")


def test_a_host_started_without_root_reports_what_is_missing_and_keeps_the_rest(hosts):
    assert result(hosts, "unprivileged") == {"missing": ["network", "user"], "socket": "PermissionError EPERM",
                                             "fork": "PermissionError EPERM", "read_secret": "PermissionError EACCES",
                                             "dumpable": 0}


def test_a_process_with_threads_is_refused(hosts):
    assert result(hosts, "threaded") == {"apply": "RuntimeError"}


if __name__ == "__main__":
    print(json.dumps(drive(sys.argv[1])))


def test_a_host_reads_as_the_owner_of_closed_folders_only_when_they_have_one():
    """The filesystem uid a host keeps: none when uid 65534 can read every path; the owner when
    one owner's folders keep it out; none (the report names them) when two owners' do."""
    base = Path(tempfile.mkdtemp(prefix="host-reader-"))  # under /tmp, unlike pytest's tmp_path
    try:
        base.chmod(0o755)
        open_dir, mine, theirs = base / "open", base / "mine", base / "theirs"
        for folder in (open_dir, mine, theirs):
            (folder / "lib").mkdir(parents=True)
        mine.chmod(0o700)
        theirs.chmod(0o700)
        os.chown(theirs, 1000, 1000)
        assert guards._reader([str(open_dir / "lib")]) == (None, {})
        assert guards._reader([str(open_dir / "lib"), str(mine / "lib")]) == (0, {str(mine): "mode 0700"})
        assert guards._reader([str(mine / "lib"), str(theirs / "lib")]) == (
            None, {str(mine): "mode 0700", str(theirs): "mode 0700"})
        assert guards.closed_folder(str(base / "absent")) is None  # nothing there to read
    finally:
        shutil.rmtree(base)
