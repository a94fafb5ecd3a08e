"""A real server as a child process: started through mirakuru, logged to a file, never orphaned.

:class:`Service` wraps a mirakuru executor through its public API: an ``HTTPExecutor``
when the server has a health URL (the backend's ``/healthz``), otherwise an ``Executor``
whose documented ``after_start_check`` hook calls the spec's readiness check (MQTT
CONNECT for Mosquitto, TCP connect for Redis and NATS, ``pg_isready`` for PostgreSQL).
Every child

* runs in its own session (mirakuru) so stopping it stops everything it forked;
* gets ``PR_SET_PDEATHSIG`` = SIGKILL (``setpriv``, see :func:`launch_prefix`), so even a
  SIGKILLed bench leaves no server behind;
* writes stdout and stderr to its log file, whose tail a failed start shows.

An interpreter exit that skipped :meth:`Service.stop` kills the children still running
(:func:`_kill_leftovers`). mirakuru's own ``atexit`` hook is unregistered: it kills every
process whose ``mirakuru_uuid`` *contains* this pid as a substring, so any short-lived
Python process that imported mirakuru (a CLI call, a test) could SIGKILL another bench's
servers on exit (seen: a Sentinel node of a neighbouring bench died that way).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

import mirakuru.base
from mirakuru import Executor, HTTPExecutor, SimpleExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

from bench.errors import ServiceStartError, ToolMissingError

#: Where Debian puts server binaries that are not on an ordinary user's PATH.
EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/lib/postgresql/*/bin")
#: The Debian/Ubuntu package that ships each binary (for the "install it" message).
PACKAGES = {
    "mosquitto": "mosquitto",
    "nats-server": "nats-server",
    "redis-server": "redis-server",
    "initdb": "postgresql",
    "postgres": "postgresql",
    "pg_isready": "postgresql",
    "createdb": "postgresql",
    "setpriv": "util-linux",
    "prlimit": "util-linux",
    "env": "coreutils",
    "ip": "iproute2",
}
LOG_TAIL_LINES = 30


def find_binary(tool: str) -> str:
    """Absolute path of ``tool`` from PATH or the Debian server dirs, else ToolMissingError."""
    found = shutil.which(tool)
    if found:
        return found
    for pattern in EXTRA_BIN_DIRS:
        # Newest PostgreSQL first when several major versions are installed.
        for directory in sorted(Path("/").glob(pattern.lstrip("/")), reverse=True):
            candidate = directory / tool
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise ToolMissingError(tool, PACKAGES.get(tool, tool))


#: Ports handed out by this process, never handed out twice (a stopped server keeps its
#: port reserved for its restart).
_HANDED_OUT: set[int] = set()
_PORT_LOCK = threading.Lock()
_LOWEST_PORT = 10_000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, below the kernel's ephemeral range.

    Ports from the ephemeral range (what binding port 0 gives) can be taken at any moment
    by an outgoing connection of any process, including the server's own clients, which
    would steal a port picked for a server or for its restart. Below that range only
    listeners compete, and this process never hands out a port twice.
    """
    low, _high = _ephemeral_range()
    if low - _LOWEST_PORT < 1000:
        return _kernel_port(host)
    rng = random.SystemRandom()
    with _PORT_LOCK:
        for _ in range(200):
            port = rng.randrange(_LOWEST_PORT, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    return _kernel_port(host)


def _kernel_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16_384))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one server.

    ``ready`` (a callable) or ``health_url`` says when the server serves (polled until
    ``start_timeout_s``); ``user`` runs
    it as another account (PostgreSQL refuses root); ``nofile`` raises RLIMIT_NOFILE in
    the child (Mosquitto holding a fleet of 10,000 clients).
    """

    name: str
    command: list[str]
    log: Path
    ready: Callable[[], bool] | None = None
    #: Instead of ``ready``: an HTTP URL that answers 200 once the server serves.
    health_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None
    nofile: int | None = None
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 15.0
    stop_signal: int = signal.SIGTERM
    drop_env_prefix: str | None = None
    #: Run inside this network namespace (``ip netns exec``; the WAN bench, root only).
    netns: str | None = None


#: Services whose child may still run (killed at interpreter exit; see the module doc).
_LIVE: weakref.WeakSet[Service] = weakref.WeakSet()
atexit.unregister(mirakuru.base.cleanup_subprocesses)


@atexit.register
def _kill_leftovers() -> None:
    for service in list(_LIVE):
        with contextlib.suppress(Exception):
            service.kill()


def launch_prefix(spec: ServiceSpec) -> list[str]:
    """Commands that prepare the child and ``exec`` the server (the pid stays the same).

    mirakuru already runs every child in its own session; what it has no option for is
    done by util-linux and coreutils tools in front of the command, instead of a
    ``preexec_fn`` of our own:

    * ``setpriv --pdeathsig KILL``: the server dies with the bench, even a SIGKILLed one.
      The kernel fires it when the *thread* that forked exits, so only for children
      started from the main thread (which lives as long as the process);
    * ``prlimit --nofile``: a higher open-file limit (Mosquitto holding a fleet);
    * ``env -u NAME``: variables of ``drop_env_prefix`` the caller's environment has but
      the spec does not set (only the bench decides a backend's settings).
    """
    prefix: list[str] = []
    if spec.netns is not None:
        # ``ip netns exec`` switches namespace and execs (no fork): the pid stays the server's.
        prefix += [find_binary("ip"), "netns", "exec", spec.netns]
    if spec.drop_env_prefix:
        dropped = sorted(
            name
            for name in os.environ
            if name.startswith(spec.drop_env_prefix) and name not in spec.env
        )
        if dropped:
            prefix += [find_binary("env"), *(f"--unset={name}" for name in dropped)]
    if spec.nofile is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if _may_raise_hard_limits():
            limits = f"{spec.nofile}:{max(spec.nofile, hard)}"
        elif hard == resource.RLIM_INFINITY:
            limits = f"{spec.nofile}:unlimited"
        else:
            limits = f"{min(spec.nofile, hard)}:{hard}"
        prefix += [find_binary("prlimit"), f"--nofile={limits}", "--"]
    if threading.current_thread() is threading.main_thread():
        prefix += [find_binary("setpriv"), "--pdeathsig", "KILL", "--"]
    return prefix


_CAP_SYS_RESOURCE = 24


def _may_raise_hard_limits() -> bool:
    """True when this process holds CAP_SYS_RESOURCE (root outside a restricted
    container), the capability needed to raise a hard resource limit."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


class _SpawnOnly(Executor):
    """Start without waiting: :meth:`Service.wait_ready` waits, so several servers (and
    both backends) come up side by side. Only public mirakuru API is used: the documented
    ``pre_start_check`` / ``after_start_check`` hooks, ``SimpleExecutor.start`` (spawn and
    start the timeout) and ``wait_for(check_subprocess)``."""

    def start(self) -> Self:
        if self.pre_start_check():
            raise AlreadyRunning(self)
        SimpleExecutor.start(self)
        return self


class _CallableExecutor(_SpawnOnly):
    """Ready when ``spec.ready()`` says so (TCP connect, MQTT CONNECT, ``pg_isready``)."""

    def __init__(self, spec: ServiceSpec, ready: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spec = spec
        self._ready = ready

    def pre_start_check(self) -> bool:
        # Someone else already on our port would make the readiness check lie.
        return bool(self._spec.port) and tcp_accepts(self._spec.host, self._spec.port, 0.2)

    def after_start_check(self) -> bool:
        return self._ready()


class _HttpExecutor(_SpawnOnly, HTTPExecutor):
    """Ready when ``GET spec.health_url`` answers 200 (mirakuru's HTTPExecutor)."""


def _executor(spec: ServiceSpec, log_handle: IO[Any]) -> _SpawnOnly:
    popen: dict[str, Any] = {}
    if spec.user is not None:
        popen["user"] = spec.user
    common: dict[str, Any] = {
        "command": [*launch_prefix(spec), *spec.command],
        "cwd": str(spec.cwd) if spec.cwd else None,
        "timeout": spec.start_timeout_s,
        "sleep": 0.02,
        "stop_signal": spec.stop_signal,
        "envvars": dict(spec.env),
        "stdin": subprocess.DEVNULL,
        "stdout": log_handle,
        "stderr": subprocess.STDOUT,
        "popen_kwargs": popen,
    }
    if spec.health_url is not None:
        return _HttpExecutor(
            url=spec.health_url, status=200, method="GET", request_timeout=1.0, **common
        )
    if spec.ready is None:
        raise ServiceStartError(spec.name, "the spec names neither ready nor health_url")
    return _CallableExecutor(spec, spec.ready, **common)


class Service:
    """One server process; ``start`` waits until it serves, ``stop`` is safe to repeat."""

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self._executor: _SpawnOnly | None = None
        self._log_handle: IO[Any] | None = None

    @property
    def name(self) -> str:
        """The service's name (used in errors and logs)."""
        return self.spec.name

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        executor = self._executor
        if executor is None or executor.process is None:
            return None
        return executor.process.pid

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._executor is not None and self._executor.running()

    def start(self) -> None:
        """Start the server and wait until ``spec.ready``; ServiceStartError with the log tail."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Spawn the process without waiting (start several, then :meth:`wait_ready` each)."""
        if self.running:
            return
        spec = self.spec
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = spec.log.open("ab")
        with self._failures():
            executor = _executor(spec, self._log_handle)
            self._executor = executor
            executor.start()
        _LIVE.add(self)

    def wait_ready(self) -> None:
        """Wait until the launched server is ready (``spec.start_timeout_s`` from launch)."""
        executor = self._executor
        if executor is None:
            raise ServiceStartError(self.spec.name, "wait_ready() before launch()")
        with self._failures():
            executor.wait_for(executor.check_subprocess)

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """Map mirakuru's errors to ServiceStartError; never leave a half-started child."""
        spec = self.spec
        command = " ".join(spec.command)
        try:
            yield
        except (AlreadyRunning, ProcessExitedWithError, TimeoutExpired) as error:
            self._discard()
            if isinstance(error, AlreadyRunning):
                why = f"port {spec.host}:{spec.port} is already taken by another process"
            elif isinstance(error, ProcessExitedWithError):
                why = f"exited with code {error.exit_code} (command: {command})"
            else:
                why = f"not ready within {spec.start_timeout_s:g} s (command: {command})"
            raise ServiceStartError(spec.name, why, log_tail(spec.log)) from None
        except FileNotFoundError as error:
            self._discard()
            raise ServiceStartError(spec.name, f"cannot run {error.filename}") from None
        except BaseException:
            self._discard()
            raise

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL after ``stop_timeout_s``) and wait for it; idempotent."""
        executor = self._executor
        if executor is None:
            return
        try:
            process = executor.process
            if process is not None and executor.running():
                # mirakuru's stop() waits its one (start) timeout; ours is stop_timeout_s.
                # The child leads its own process group (mirakuru's setsid).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, self.spec.stop_signal)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=self.spec.stop_timeout_s)
        finally:
            # SIGKILLs whatever outlived the stop signal (group and marked children).
            self._discard()

    def kill(self) -> None:
        """SIGKILL the server at once (crash simulation); idempotent."""
        executor = self._executor
        if executor is None:
            return
        try:
            executor.kill()
        finally:
            self._discard()

    def _discard(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.kill()
        handle, self._log_handle = self._log_handle, None
        if handle is not None:
            handle.close()
