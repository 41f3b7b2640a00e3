"""Real PostgreSQL and Redis servers for the tests, run as child processes on 127.0.0.1.

Each server gets a free TCP port and a private data folder, and can be stopped, crashed
(SIGKILL) and started again on the same port and data, so a test can restart a server mid-run
and check what survived. The fixtures in `tests/_services.py` build on these classes; a test
that needs a private server (one it may restart) uses the `make_postgres_server` /
`make_redis_server` factories rather than constructing them.

PostgreSQL comes from the `pgserver` wheel (a real PostgreSQL build that pip installs; the `dev`
extra has it); Redis from the `redis-server` program (Debian's `redis-server` package, installed
by `scripts/install-test-deps.sh`). When either is missing, `ServiceMissing` says how to install it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

INSTALL_HINT = "run `bash scripts/install-test-deps.sh` (needs root: it uses apt-get)"
PIP_HINT = 'run `.venv/bin/pip install -e ".[dev]"`'


class ServiceMissing(RuntimeError):
    """A program the tests need is not installed; the message says how to install it."""


class ServiceFailed(RuntimeError):
    """A server did not come up; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


_running: set[_ChildServer] = set()


@atexit.register
def _kill_leftovers() -> None:
    # A server outlives its test process only when that process exits without running the
    # fixtures' teardown (an error in a script, a second Ctrl-C): kill what is left.
    for server in list(_running):
        server.abandon()


class _ChildServer:
    """A server process in its own process group (a Ctrl-C in the terminal reaches the tests,
    not the server), with `crash()` killing it and every process it started."""

    name = "server"

    def __init__(self, folder: Path, port: int | None) -> None:
        self.folder = folder
        self.port = port if port is not None else free_port()
        self.log_path = folder / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- subclass hooks -------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, object]:
        return {}

    def _is_ready(self) -> bool:
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers.

        Raises:
            ServiceFailed: it exited or did not answer within `timeout` seconds.
        """
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **self._popen_kwargs())
        finally:
            log.close()
        _running.add(self)
        deadline = time.monotonic() + timeout
        while self._proc.poll() is not None or not self._is_ready():
            if self._proc.poll() is not None:
                raise ServiceFailed(f"{self.name} exited with {self._proc.returncode} at start; "
                                    f"log {self.log_path}:\n{_log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.crash()
                raise ServiceFailed(f"{self.name} did not answer on 127.0.0.1:{self.port} within "
                                    f"{timeout:.0f} s; log {self.log_path}:\n"
                                    f"{_log_tail(self.log_path)}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (the server writes out what it keeps); no-op when not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        proc.send_signal(self._stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.crash()
        self._proc = None
        _running.discard(self)

    def crash(self) -> None:
        """SIGKILL the server and every process it started, like a machine losing power.

        Children are found by parentage, not process group: PostgreSQL's backends each call
        setsid(), and one left alive would go on answering its open connection.
        """
        proc = self._proc
        if proc is None:
            return
        import psutil  # type: ignore[import-untyped]

        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.wait()
        psutil.wait_procs(children, timeout=10)
        self._proc = None
        _running.discard(self)

    def abandon(self) -> None:
        """Kill the server at interpreter exit; subclasses also delete folders they made."""
        self.crash()

    def restart(self) -> None:
        """Clean stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    _stop_signal = signal.SIGTERM

    def _ask(self, request: bytes) -> bytes:
        """Send `request` on a fresh TCP connection to the port; the first answer, or b""."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(request)
                return sock.recv(65536)
        except OSError:
            return b""


class RedisServer(_ChildServer):
    """`redis-server` on 127.0.0.1.

    With `persistent=True` every write is appended and fsynced (`appendfsync always`), so data
    survives `stop()`, `crash()` and `restart()`; otherwise nothing is saved and a restart
    starts empty.

    Raises:
        ServiceMissing: `redis-server` is not installed.
    """

    name = "redis"

    def __init__(self, folder: Path, *, port: int | None = None, persistent: bool = False) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise ServiceMissing(f"redis-server is not installed: {INSTALL_HINT}")
        self.executable = executable
        self.persistent = persistent
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder, port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        return [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "", *persistence,
                "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"]

    def _is_ready(self) -> bool:
        # Ours, not some other program that got the port first: the answer names our pid.
        info = self._ask(b"INFO server\r\n").decode("latin-1")
        return self._proc is not None and f"process_id:{self._proc.pid}\r\n" in info


class PostgresServer(_ChildServer):
    """PostgreSQL from the `pgserver` wheel on 127.0.0.1, user `postgres`, trust auth.

    The data folder is made by `initdb` once; `stop()` is a fast clean shutdown, `crash()` a
    SIGKILL of the postmaster and its backends (the next `start()` recovers from the WAL, so
    committed data survives both). As root, PostgreSQL refuses to run, so the server runs as the
    system user `pgserver` (created if missing, as pgserver itself does).

    Raises:
        ServiceMissing: the `pgserver` package is not installed.
        ServiceFailed: `initdb` failed.
    """

    name = "postgres"
    _stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit

    def __init__(self, folder: Path | None = None, *, port: int | None = None) -> None:
        try:
            with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import pgserver
                import pgserver.utils as pg_utils
        except ImportError as exc:
            raise ServiceMissing(f"the pgserver package is not installed ({exc}): "
                                 f"{PIP_HINT}") from exc
        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self._user: str | None = None
        # Under root the folder must be one the `pgserver` user can reach: a fresh one in /tmp.
        owned = folder is None
        folder = Path(tempfile.mkdtemp(prefix="kimi-pg-")) if folder is None else folder
        folder.mkdir(parents=True, exist_ok=True)
        self._owned_folder = owned
        if os.geteuid() == 0:
            self._user = "pgserver"
            entry = pg_utils.ensure_user_exists(self._user)
            assert entry is not None
            pg_utils.ensure_prefix_permissions(self.bin)
            pg_utils.ensure_folder_permissions(self.bin, 0o055)
            pg_utils.ensure_folder_permissions(self.bin.parent / "lib", 0o044)
            pg_utils.ensure_prefix_permissions(folder)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        super().__init__(folder, port)
        self.data = folder / "data"
        self.sockets = folder / "sockets"
        if not (self.data / "PG_VERSION").exists():
            self._initdb()

    def _as_user(self) -> dict[str, object]:
        if not self._user:
            return {}
        return {"user": self._user, "group": self._user, "extra_groups": []}

    def _initdb(self) -> None:
        self.sockets.mkdir(exist_ok=True)
        if self._user:
            shutil.chown(self.sockets, self._user, self._user)
        done = subprocess.run(  # type: ignore[call-overload]
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-sync"],
            capture_output=True, text=True, cwd=self.folder, **self._as_user())
        if done.returncode != 0:
            raise ServiceFailed(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def _popen_kwargs(self) -> dict[str, object]:
        return {"cwd": self.folder, **self._as_user()}

    def _command(self) -> list[str]:
        # fsync off: the tests crash the server process, never the machine, and a commit still
        # write()s its WAL to the OS before it returns, so committed data survives a SIGKILL.
        # (synchronous_commit stays on: off would keep the last commits in shared memory only.)
        settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                    "unix_socket_directories": str(self.sockets), "max_connections": "300",
                    "fsync": "off", "full_page_writes": "off",
                    "shared_buffers": "64MB", "log_min_messages": "warning"}
        args = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _is_ready(self) -> bool:
        # postmaster.pid: pid, data dir, start time, port, socket dir, address, shm, status.
        # Ours (our pid, our port) and "ready" once it accepts connections, after recovery.
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (len(lines) >= 8 and self._proc is not None
                and lines[0].strip() == str(self._proc.pid)
                and lines[3].strip() == str(self.port) and lines[7].strip() == "ready")

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for `database` on this server (user `postgres`, no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the server's own `psql` (no Python driver needed); returns its output.

        Raises:
            ServiceFailed: psql failed (the server is down or refused the SQL); carries its stderr.
        """
        done = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v",
                               "ON_ERROR_STOP=1", self.url(database)], input=sql,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServiceFailed(f"psql failed ({done.returncode}) on {sql!r}: {done.stderr}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever is still connected to it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def abandon(self) -> None:
        self.crash()
        if self._owned_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def remove(self) -> None:
        """Stop the server and delete its folder (when the folder was made here)."""
        self.stop()
        if self._owned_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
