"""What a model host may not do, applied in the host right after the fork server forks it.

Loading a scikit-learn model runs whatever code its pickle names, so from the first byte of the
model on we treat the host as hostile: it must not reach the network, the database or the app's
files, start processes, signal or trace other hosts, poke at rarer kernel interfaces, or take the
machine's memory and disk with it. :func:`apply` locks the calling process down and says which
guards hold; a guard the machine cannot give (no root on a laptop, an old kernel) is reported as
``"missing: <why>"`` and the others still apply.

The order matters:

1. ``network`` first: a new network namespace needs root (CAP_SYS_ADMIN).
2. ``fds`` before anything here opens a file, so only what the caller names survives.
3. ``memory`` and the other limits: lowered while we still know the process's own size;
   RLIMIT_NPROC 0 only binds once the uid is not root.
4. the Landlock ruleset is built while still root, so every allowed path can be opened.
5. ``scratch`` folder: handing it to uid 65534 (or the reader, below) needs root.
6. ``user``: drop to nobody, then ask to die with the parent (a credential change clears that).
   When uid 65534 cannot enter a folder holding what the host reads (a checkout or a Python under
   /root or in a ``mktemp -d`` folder, both mode 0700), the host keeps that folder's owner as its
   filesystem uid only: it reads with the owner's file rights, without capabilities, and only
   where Landlock lets it (so only with Landlock; without it the host stays plain nobody).
7. ``dumpable`` off, 8. no_new_privs (Landlock and seccomp need it without CAP_SYS_ADMIN).
9. Landlock enforced, 10. seccomp last: it denies set*id, unshare and more that steps 1-6 use.

Landlock, seccomp and the namespace apply to the calling thread only, which is why :func:`apply`
refuses a process with more than one thread: call it in a freshly forked child. The host cannot
start threads afterwards either, so the fork server must cap OpenBLAS/OpenMP at one thread before
importing numpy (OpenBLAS raises SIGINT when it cannot start its threads).

Only the standard library is imported: the fork server pays nothing for this module, and the host
needs no file it has not already loaded. Anything it imports later must be listed in
``read_paths`` (the Python installation always is).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import stat
import struct
import sys
from typing import Sequence

UNPRIVILEGED = 65534  # nobody
GUARDS = ("network", "fds", "scratch", "memory", "files", "user", "dumpable", "processes", "syscalls")

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 8, 22, 38
CAP_SETUID, LINUX_CAPABILITY_VERSION_3 = 7, 0x20080522
SIGKILL = 9

# Landlock (linux/landlock.h): syscalls, then access rights by the ABI version that added them.
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION, LANDLOCK_RULE_PATH_BENEATH = 1 << 0, 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_V1 = (1 << 13) - 1                      # the 13 rights of ABI 1, EXECUTE .. MAKE_SYM
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
FS_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1                   # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1        # ABI 6

# seccomp: classic BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}.
BPF_LD_ABS, BPF_JEQ, BPF_JGE, BPF_RET = 0x20, 0x15, 0x35, 0x06
AUDIT_ARCH_X86_64, X32_SYSCALL_BIT = 0xC000003E, 0x40000000
RET_KILL_PROCESS, RET_ALLOW, RET_EPERM = 0x80000000, 0x7FFF0000, 0x00050000 | errno.EPERM
SECCOMP_MODE_FILTER = 2

# x86_64 syscall numbers the host never needs; each fails with EPERM.
DENIED = (
    41, 42, 43, 49, 50, 53, 288,          # socket, connect, accept, bind, listen, socketpair, accept4
    56, 57, 58, 59, 322, 435,             # clone, fork, vfork, execve, execveat, clone3
    424, 129, 297,                        # pidfd_send_signal, rt_sigqueueinfo, rt_tgsigqueueinfo
    101, 310, 311, 434, 438, 312,         # ptrace, process_vm_readv/writev, pidfd_open/getfd, kcmp
    165, 166, 272, 308, 155, 161,         # mount, umount2, unshare, setns, pivot_root, chroot
    248, 249, 250,                        # add_key, request_key, keyctl
    321, 298, 323,                        # bpf, perf_event_open, userfaultfd
    425, 426, 427,                        # io_uring_setup, io_uring_enter, io_uring_register
    175, 313, 176, 246, 320, 169, 167, 168,  # modules, kexec_load/file_load, reboot, swapon/off
    303, 304,                             # name_to_handle_at, open_by_handle_at
    105, 106, 113, 114, 117, 119, 116, 122, 123,  # set*uid, set*gid, setgroups, setfsuid/gid
    135,                                  # personality
)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C  # ioctls that type into, or control, the terminal behind fd 1/2


def apply(*, scratch: str, keep_fds: Sequence[int], memory_mb: int, file_mb: int,
          read_paths: Sequence[str] = (), processes: int = 0) -> dict[str, str]:
    """Lock this process down; returns {guard: description} of the guards now active
    (a guard that could not be applied maps to a string starting with "missing: <why>").

    ``scratch`` is a folder the caller made for this host: it becomes the only writable place.
    ``read_paths`` are what the host may read besides the Python installation and the system
    libraries. ``processes``: how many processes uid 65534 may run while this one lives (0, a
    model host: it starts none; the compile sandbox runs gcc, which starts several); with more
    than 0, seccomp lets it fork and exec. Raises only when the process has threads, or when root
    cannot become nobody."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = 1
    if threads > 1:
        raise RuntimeError(f"guards.apply needs a single-threaded process (found {threads} threads): "
                           "Landlock, seccomp and the network namespace bind the calling thread only")
    parent = os.getppid()
    scratch = os.path.abspath(scratch)
    readable = (*read_paths, sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr", "/lib", "/lib64",
                "/etc/ld.so.cache")
    reader, closed = _reader(readable) if os.geteuid() == 0 else (None, {})
    report = {"network": network(), "fds": fds(keep_fds)}
    report["memory"], nproc = memory(memory_mb, file_mb, processes)
    ruleset, report["files"] = landlock_ruleset(scratch, readable)
    if ruleset is None:
        reader = None  # reading with the owner's rights is safe only inside Landlock's paths
    report["scratch"] = scratch_folder(scratch, UNPRIVILEGED if reader is None else reader)
    report["user"] = user(reader, closed)
    # access() with effective_ids checks the filesystem uid, the one that opens files
    if not report["user"].startswith("missing:") and not os.access(scratch, os.W_OK | os.X_OK, effective_ids=True):
        report["scratch"] = f"missing: uid {UNPRIVILEGED} cannot reach {scratch} (a parent folder is closed)"
    # Die with the parent (the fork server) rather than outlive it. Compared with the parent at
    # entry, not with 1: a fork server may itself be PID 1 in a container.
    orphan_killed = not _try(_prctl, PR_SET_PDEATHSIG, SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
    reason = _try(_prctl, PR_SET_DUMPABLE, 0)  # the uid change cleared it; a host started as nobody needs it
    report["dumpable"] = f"missing: {reason}" if reason else (
        "not dumpable: other hosts of the same uid cannot trace it or read its memory")
    # no_new_privs: no setuid binary or file capability can raise privileges again; Landlock and
    # seccomp insist on it from a process without CAP_SYS_ADMIN.
    no_new_privs = _try(_prctl, PR_SET_NO_NEW_PRIVS, 1)
    report["files"] = landlock_restrict(ruleset, report["files"], no_new_privs)
    if reader is not None and report["files"].startswith("missing:"):
        _setfsuid(UNPRIVILEGED)  # no Landlock after all: the owner's rights would reach everything
        report["user"] = f"uid {UNPRIVILEGED}, no capabilities (cannot read {_listed(closed)})"
    report["processes"], report["syscalls"] = syscalls(nproc, orphan_killed, no_new_privs, processes)
    return {name: report[name] for name in GUARDS}


def expected() -> list[str]:
    """The guards this machine cannot give, found without applying any: what the app tells its
    users before a host has reported (the fork server runs as the app's user)."""
    gaps = []
    if os.geteuid() != 0:  # a network namespace, the scratch folder's owner and the uid drop need root
        gaps += ["network", "scratch", "user"]
    try:
        _call("syscall", LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except OSError:
        gaps.append("files")
    if os.uname().machine != "x86_64":  # the seccomp filter knows x86_64's syscall numbers only
        gaps += ["processes", "syscalls"]
    return gaps


def missing(report: dict[str, str]) -> list[str]:
    """The guards of an :func:`apply` report that could not be applied."""
    return [name for name, value in report.items() if value.startswith("missing:")]


def network() -> str:
    """A new network namespace: no interface but a loopback that is down, so no TCP or UDP to
    anywhere, and a namespace of its own for abstract Unix sockets."""
    reason = _try(_call, "unshare", CLONE_NEWNET)
    if reason:
        return f"missing: {reason} (a network namespace needs root)"
    return "network namespace (no interfaces)"


def fds(keep_fds: Sequence[int]) -> str:
    """Close every inherited file (the fork server's sockets, a database connection) except
    stdout, stderr and ``keep_fds``; stdin reads /dev/null."""
    keep = sorted({fd for fd in keep_fds if fd > 2})
    try:
        null = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        os.close(0)
        stdin = f"stdin closed ({exc.strerror})"
    else:
        stdin = "stdin reads /dev/null"
        if null != 0:
            os.dup2(null, 0)
            os.close(null)
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    highest = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if highest == resource.RLIM_INFINITY or highest > 1 << 20:
        highest = 1 << 20
    os.closerange(low, highest)  # close_range(2) underneath on Linux 5.9+: cheap however high
    return f"closed every inherited file but stdout, stderr and {len(keep)} kept; {stdin}"


def scratch_folder(scratch: str, owner: int = UNPRIVILEGED) -> str:
    """The host's own folder, owned by nobody (or by the uid it reads files as), as its working
    directory, HOME and TMPDIR."""
    try:
        if os.geteuid() == 0:
            os.chown(scratch, owner, UNPRIVILEGED)
        os.chmod(scratch, 0o700)
        os.chdir(scratch)
    except OSError as exc:
        return f"missing: cannot take over the scratch folder {scratch} ({exc.strerror})"
    os.environ["HOME"] = os.environ["TMPDIR"] = scratch
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:  # it caches the folder it found first (the fork server's /tmp)
        tempfile.tempdir = scratch
    return f"works in {scratch} (mode 0700), also its HOME and TMPDIR"


def memory(memory_mb: int, file_mb: int, processes: int = 0) -> tuple[str, bool]:
    """Resource limits, soft = hard so they cannot be raised again. RLIMIT_DATA (heap and private
    mappings) rather than RLIMIT_AS: OpenBLAS and onnxruntime reserve far more address space than
    they use. Returns the description and whether RLIMIT_NPROC ``processes`` holds (it counts
    every process of the uid, and only once the uid is not root)."""
    try:
        with open("/proc/self/status") as status:
            data_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
        _lower(resource.RLIMIT_DATA, (data_kb << 10) + (memory_mb << 20))
        _lower(resource.RLIMIT_FSIZE, file_mb << 20)
        _lower(resource.RLIMIT_CORE, 0)
        _lower(resource.RLIMIT_NOFILE, min(64, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    except (OSError, ValueError, StopIteration) as exc:
        return f"missing: cannot set the resource limits ({exc})", False
    nproc = not _try(_lower, resource.RLIMIT_NPROC, processes)
    return (f"RLIMIT_DATA {memory_mb} MiB above the start (RLIMIT_AS would trip on address-space "
            f"reservations); files up to {file_mb} MiB, no core dumps, at most 64 open files"), nproc


def landlock_ruleset(scratch: str, read_paths: Sequence[str]) -> tuple[int | None, str]:
    """Build (not yet enforce) the Landlock ruleset: every right in the scratch folder, reading and
    executing in ``read_paths`` (the Python installation, the system libraries), nothing anywhere
    else (not /etc/passwd, not /proc, not the app's data). Returns the ruleset fd, or None, and a
    description."""
    try:
        abi = _call("syscall", LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except OSError as exc:
        return None, f"missing: Landlock is not available on this kernel ({exc.strerror})"
    fs = FS_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (
        FS_IOCTL_DEV if abi >= 5 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0      # handled, and no rule allows any
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    size = 8 if abi < 4 else 16 if abi < 6 else 24               # the struct as this ABI knows it
    attr = ctypes.create_string_buffer(struct.pack("<QQQ", fs, net, scoped)[:size], size)
    try:
        ruleset = _call("syscall", LANDLOCK_CREATE_RULESET, attr, size, 0)
    except OSError as exc:
        return None, f"missing: Landlock refused the ruleset ({exc.strerror})"
    readable = FS_READ_FILE | FS_READ_DIR | FS_EXECUTE
    rules = {scratch: fs, os.devnull: FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE, "/dev/urandom": FS_READ_FILE}
    for path in read_paths:
        rules.setdefault(path, readable)
    try:
        for path, rights in rules.items():
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                if path == scratch:
                    raise
                continue  # a path this machine does not have
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= FS_FILE_ONLY  # directory rights on a file are EINVAL
                rule = ctypes.create_string_buffer(struct.pack("<Qi", rights & fs, fd), 12)
                _call("syscall", LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0)
            finally:
                os.close(fd)
    except OSError as exc:
        os.close(ruleset)
        return None, f"missing: Landlock refused the rule for {path} ({exc.strerror})"
    described = f"Landlock ABI {abi}: writes only in the scratch folder, reads only the Python installation"
    if net:
        described += "; no TCP bind or connect"
    if scoped:
        described += "; no signals or abstract Unix sockets outside"
    return ruleset, described


def user(reader: int | None = None, closed: dict[str, str] | None = None) -> str:
    """Become nobody: no capabilities, and a uid that owns no file of the app. Fatal when root
    cannot do it (a host would then run as root); merely missing when we are not root.

    ``reader``: the filesystem uid to keep (see :func:`_reader`) for the ``closed`` folders. Only
    file permission checks use it; signals, process limits and ptrace go by the real uid, so the
    host is still nobody to every other process, and Landlock decides which files it may open."""
    if os.geteuid() != 0:
        return f"missing: not started as root, so it stays uid {os.geteuid()}"
    os.setgroups([])
    os.setresgid(UNPRIVILEGED, UNPRIVILEGED, UNPRIVILEGED)
    if reader is not None:
        _prctl(PR_SET_KEEPCAPS, 1)  # keep CAP_SETUID across the drop, for setfsuid below
    os.setresuid(UNPRIVILEGED, UNPRIVILEGED, UNPRIVILEGED)
    if reader is not None:
        _capset(1 << CAP_SETUID)
        _setfsuid(reader)
        _capset(0)
        _prctl(PR_SET_KEEPCAPS, 0)
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    caps = [fields[name].strip() for name in ("CapEff", "CapPrm", "CapAmb")]
    ids = [int(i) for i in fields["Uid"].split()]  # real, effective, saved, filesystem
    if any(int(mask, 16) for mask in caps) or ids != [UNPRIVILEGED] * 3 + [
            UNPRIVILEGED if reader is None else reader]:
        raise RuntimeError(f"still privileged after the drop to uid {UNPRIVILEGED}: uids {ids}, capabilities {caps}")
    if reader is None:
        return f"uid {UNPRIVILEGED}, no capabilities" + (f" (cannot read {_listed(closed)})" if closed else "")
    return (f"uid {UNPRIVILEGED}, no capabilities; opens files as uid {reader}, inside Landlock's paths only, "
            f"since uid {UNPRIVILEGED} cannot enter {_listed(closed)}")


def closed_folder(path: str) -> str | None:
    """The first folder on the way to ``path`` (or ``path`` itself) that keeps others out, so
    uid 65534 cannot read what is there; None when others may read it."""
    path = os.path.abspath(path)
    parts = [path]
    while parts[-1] != "/":
        parts.append(os.path.dirname(parts[-1]))
    for part in reversed(parts):
        try:
            mode = os.stat(part).st_mode
        except OSError:
            return None  # a path this machine does not have: nothing to read there
        needed = 0o001 if part != path else 0o005 if stat.S_ISDIR(mode) else 0o004
        if mode & needed != needed:
            return part
    return None


def _reader(paths: Sequence[str]) -> tuple[int | None, dict[str, str]]:
    """Which uid a host should open files as: None (nobody) when uid 65534 can read every one of
    ``paths``, else the owner of the folders that keep it out when they have one owner, who can
    enter them. Also returns the closed folders, described for the report."""
    closed = {}
    for path in paths:
        folder = closed_folder(path)
        if folder is not None and folder not in closed:
            info = os.stat(folder)
            closed[folder] = (info.st_uid, info.st_mode)
    owners = {uid for uid, _mode in closed.values()}
    described = {folder: f"mode {stat.S_IMODE(mode):04o}" for folder, (_uid, mode) in closed.items()}
    if len(owners) != 1 or any(mode & 0o500 != 0o500 for _uid, mode in closed.values()):
        return None, described
    return owners.pop(), described


def _listed(closed: dict[str, str] | None) -> str:
    return ", ".join(f"{folder} ({how})" for folder, how in (closed or {}).items()) or "nothing"


def _capset(permitted: int) -> None:
    """Set the permitted and effective capabilities to ``permitted`` (the first 32 only)."""
    header = struct.pack("<Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = struct.pack("<6I", permitted, permitted, 0, 0, 0, 0)  # effective, permitted, inheritable x2
    _call("capset", ctypes.create_string_buffer(header, 8), ctypes.create_string_buffer(data, 24))


def _setfsuid(uid: int) -> None:
    _call("setfsuid", uid)  # returns the previous fsuid, never -1: user() checks the result


def landlock_restrict(ruleset: int | None, described: str, no_new_privs: str) -> str:
    """Enforce the ruleset built earlier; from now on the filesystem rules hold."""
    if ruleset is None:
        return described
    try:
        reason = no_new_privs or _try(_call, "syscall", LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return f"missing: Landlock could not be enforced ({reason})" if reason else described


def syscalls(nproc: bool, orphan_killed: bool, no_new_privs: str, processes: int = 0) -> tuple[str, str]:
    """Install the seccomp filter; returns the "processes" and "syscalls" descriptions."""
    if os.uname().machine != "x86_64":
        reason = f"missing: the seccomp filter is written for x86_64, not {os.uname().machine}"
        return reason, reason
    program = _seccomp_program(os.getpid(), processes > 0)
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):  # struct sock_fprog {unsigned short len; filter *}
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    reason = no_new_privs or _try(_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
    if reason:
        reason = f"missing: seccomp refused the filter ({reason})"
        return reason, reason
    limit = processes
    processes = "seccomp: no fork, exec or signals to others" if not limit else \
        "may start programs (fork, exec); seccomp: no signals to others"
    processes += f"; RLIMIT_NPROC {limit}" if nproc else ""
    processes += "; killed when its parent dies" if orphan_killed else ""
    return processes, ("seccomp deny-list: sockets, ptrace, mounts, namespaces, keyrings, bpf, "
                       "io_uring, kernel modules, uid changes, terminal input")


PROCESS_SYSCALLS = (56, 57, 58, 59, 322, 435)  # clone, fork, vfork, execve, execveat, clone3


def _seccomp_program(pid: int, processes: bool = False) -> bytes:
    """The BPF program: kill a foreign architecture, refuse x32 and the ``DENIED`` syscalls, let
    the host signal itself only (abort() must still work: raise() is tgkill(own pid, ...)), and
    allow the rest."""
    # (syscall, argument, values, verdict when the argument is one of them, verdict otherwise);
    # arguments compare on their low 32 bits, which is all the kernel reads of an int or pid_t.
    by_argument = [
        (62, 0, (pid,), RET_ALLOW, RET_EPERM),        # kill: itself only (not 0, its group)
        (200, 0, (pid,), RET_ALLOW, RET_EPERM),       # tkill: its only thread
        (234, 0, (pid,), RET_ALLOW, RET_EPERM),       # tgkill: its own thread group
        (302, 0, (0, pid), RET_ALLOW, RET_EPERM),     # prlimit64: its own limits only
        (16, 1, (TIOCSTI, TIOCLINUX), RET_EPERM, RET_ALLOW),   # ioctl
        (157, 0, (PR_SET_DUMPABLE,), RET_EPERM, RET_ALLOW),    # prctl: stays not dumpable
    ]
    code = [(BPF_LD_ABS, 0, 0, 4), (BPF_JEQ, 1, 0, AUDIT_ARCH_X86_64), (BPF_RET, 0, 0, RET_KILL_PROCESS),
            (BPF_LD_ABS, 0, 0, 0), (BPF_JGE, 0, 1, X32_SYSCALL_BIT), (BPF_RET, 0, 0, RET_EPERM)]
    for nr in DENIED:
        if not (processes and nr in PROCESS_SYSCALLS):
            code += [(BPF_JEQ, 0, 1, nr), (BPF_RET, 0, 0, RET_EPERM)]
    for nr, argument, values, match, otherwise in by_argument:
        n = len(values)
        code.append((BPF_JEQ, 0, n + 3, nr))             # not this syscall: skip the block
        code.append((BPF_LD_ABS, 0, 0, 16 + 8 * argument))
        code += [(BPF_JEQ, n - i, 0, value) for i, value in enumerate(values)]
        code += [(BPF_RET, 0, 0, otherwise), (BPF_RET, 0, 0, match)]
    code.append((BPF_RET, 0, 0, RET_ALLOW))
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in code)


def _lower(limit: int, value: int) -> None:
    hard = resource.getrlimit(limit)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value))


def _call(name: str, *args: object) -> int:
    """A libc function with every integer passed as a C long; OSError on -1."""
    function = getattr(ctypes.CDLL(None, use_errno=True), name)
    function.restype = ctypes.c_long
    result = function(*(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _prctl(option: int, value: int, pointer: int = 0) -> None:
    _call("prctl", option, value, pointer, 0, 0)


def _try(function, *args) -> str:
    """Run ``function``: "" when it worked, else why not."""
    try:
        function(*args)
    except (OSError, ValueError) as exc:
        return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ""
