"""Start and stop real redis-server / PostgreSQL servers for tests.

Plain helpers (no pytest dependency):

    redis = start_redis(tmpdir)            # RedisServer: .url .port .stop() .restart()
    pg = start_postgres(tmpdir)            # PostgresServer: .url .port .stop() .create_database(name)

Servers listen on 127.0.0.1 on a free port, keep their data in a temp dir and are
stopped at interpreter exit (atexit) or, if the test process is killed outright,
by the kernel's parent-death signal, so no stray server outlives a test run.

PostgreSQL refuses to run as root: when running as root the cluster lives in a
directory under the system temp dir owned by the ``postgres`` OS user (created with
``useradd --system postgres`` if missing) and initdb/postgres run as that user.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerError",
    "free_port",
    "pg_bindir",
    "start_postgres",
    "start_redis",
]

LOCALHOST = "127.0.0.1"
PG_OS_USER = "postgres"
PG_SUPERUSER = "postgres"
PG_DEFAULT_DB = "followup"
_STALE_PREFIX = "followup-pg-"


class ServerError(RuntimeError):
    """A test server failed to start or stop."""


# ---------------------------------------------------------------------------
# generic helpers
# ---------------------------------------------------------------------------

_live: set[_Server] = set()
_live_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOCALHOST, port)) == 0


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """preexec_fn that makes the child get SIGTERM when the test process dies (Linux).

    Only from the main thread: the kernel sends the signal when the *thread* that
    forked exits, so a server started from a short-lived thread would die with it.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def _preexec() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # parent already gone
            os._exit(1)

    return _preexec


def _tail(path: Path, n: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class _Server:
    proc: subprocess.Popen[bytes] | None = None

    def _register(self) -> None:
        with _live_lock:
            _live.add(self)

    def _unregister(self) -> None:
        with _live_lock:
            _live.discard(self)

    def _kill_proc(self, sig: int, timeout: float) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(10)
        self.proc = None

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


# ---------------------------------------------------------------------------
# redis
# ---------------------------------------------------------------------------


def _redis_ping(port: int, timeout: float = 0.5) -> bytes:
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)


class RedisServer(_Server):
    """A redis-server on 127.0.0.1:port with its data dir in ``datadir``."""

    def __init__(self, datadir: Path, port: int, appendonly: bool, binary: str) -> None:
        self.datadir = datadir
        self.port = port
        self.appendonly = appendonly
        self.binary = binary
        self.logfile = datadir / "redis.log"
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def db_url(self, db: int) -> str:
        return f"redis://{LOCALHOST}:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", LOCALHOST,
            "--protected-mode", "no",
            "--daemonize", "no",
            "--dir", str(self.datadir),
            "--logfile", str(self.logfile),
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always" if self.appendonly else "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.datadir,
            preexec_fn=_pdeathsig_preexec(),
        )
        self._register()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                self._unregister()
                raise ServerError(f"redis-server exited on port {self.port}:\n{_tail(self.logfile)}")
            with contextlib.suppress(OSError):
                if _redis_ping(self.port).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"redis-server did not answer PING on {self.port}:\n{_tail(self.logfile)}")
            time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        """Stop the server: SIGTERM (clean shutdown, AOF flushed) or SIGKILL (``kill=True``, a crash)."""
        self._kill_proc(signal.SIGKILL if kill else signal.SIGTERM, timeout=15)
        self._unregister()

    def restart(self, kill: bool = False, downtime: float = 0.0) -> None:
        """Stop and start again on the same port with the same data dir.

        With ``appendonly=True`` the data survives the restart. ``downtime`` seconds
        are spent with the server down (to let clients notice the outage).
        """
        self.stop(kill=kill)
        if downtime:
            time.sleep(downtime)
        self.start()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} running={self.running}>"


def start_redis(
    tmpdir: str | os.PathLike[str], port: int | None = None, appendonly: bool = False
) -> RedisServer:
    """Start redis-server on 127.0.0.1 with its data in a fresh dir under ``tmpdir``."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise ServerError("redis-server not found (apt-get install redis-server)")
    datadir = Path(tempfile.mkdtemp(prefix="redis-", dir=str(tmpdir)))
    attempts = 1 if port is not None else 5
    last: Exception | None = None
    for _ in range(attempts):
        server = RedisServer(datadir, port if port is not None else free_port(), appendonly, binary)
        try:
            server.start()
            return server
        except ServerError as e:  # port raced away? try another one
            last = e
    raise ServerError(str(last))


# ---------------------------------------------------------------------------
# postgres
# ---------------------------------------------------------------------------


def pg_bindir() -> Path:
    """Directory holding initdb/postgres (newest /usr/lib/postgresql/*/bin, or $PG_BINDIR)."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if candidates:
        best = max(candidates, key=lambda p: int(Path(p).parent.parent.name or 0))
        return Path(best).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ServerError("PostgreSQL server binaries not found (apt-get install postgresql)")


def _pg_os_user() -> pwd.struct_passwd | None:
    """The OS user to run postgres as: None if not root, else ``postgres`` (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_OS_USER], check=True)
        return pwd.getpwnam(PG_OS_USER)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_dirs() -> None:
    """Remove cluster dirs left in the system temp dir by test processes that died."""
    for d in glob.glob(os.path.join(tempfile.gettempdir(), _STALE_PREFIX + "*")):
        owner = Path(d, "owner.pid")
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


class PostgresServer(_Server):
    """A PostgreSQL cluster on 127.0.0.1:port (superuser ``postgres``, trust auth)."""

    def __init__(
        self,
        tmpdir: Path,
        basedir: Path,
        port: int,
        bindir: Path,
        user: pwd.struct_passwd | None,
        owns_basedir: bool,
    ) -> None:
        self.tmpdir = tmpdir
        self.basedir = basedir
        self.datadir = basedir / "data"
        self.sockdir = basedir / "sock"
        self.logfile = basedir / "postgres.log"
        self.port = port
        self.bindir = bindir
        self.os_user = user
        self.owns_basedir = owns_basedir
        self.dbname = PG_DEFAULT_DB
        self.superuser = PG_SUPERUSER
        self.proc = None

    # -- urls ---------------------------------------------------------------
    def url_for(self, dbname: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.superuser}@{LOCALHOST}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default test database (``followup``)."""
        return self.url_for(self.dbname)

    @property
    def dsn(self) -> str:
        """libpq/psycopg DSN of the default test database."""
        return self.url_for(self.dbname, driver="postgresql")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- process helpers ----------------------------------------------------
    def _popen_kwargs(self) -> dict[str, object]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC")
        kw: dict[str, object] = {"cwd": str(self.basedir), "env": env, "stdin": subprocess.DEVNULL}
        if self.os_user is not None:
            env.update(HOME=str(self.basedir), USER=self.os_user.pw_name, LOGNAME=self.os_user.pw_name)
            kw.update(user=self.os_user.pw_uid, group=self.os_user.pw_gid, extra_groups=[])
        return kw

    def _initdb(self) -> None:
        cmd = [
            str(self.bindir / "initdb"),
            "-D", str(self.datadir),
            "-U", self.superuser,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, **self._popen_kwargs())
        if res.returncode != 0:
            raise ServerError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def _connect(self, dbname: str = "postgres", timeout: float = 2.0):
        import psycopg

        return psycopg.connect(
            host=LOCALHOST,
            port=self.port,
            user=self.superuser,
            dbname=dbname,
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
        )

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        cmd = [
            str(self.bindir / "postgres"),
            "-D", str(self.datadir),
            "-p", str(self.port),
            "-h", LOCALHOST,
            "-k", str(self.sockdir),
            "-c", "fsync=off",
            "-c", "full_page_writes=off",
            "-c", "synchronous_commit=off",
            "-c", "max_connections=200",
            "-c", "shared_buffers=64MB",
            "-c", "timezone=UTC",
            "-c", "log_timezone=UTC",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig_preexec(),
                **self._popen_kwargs(),
            )
        self._register()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                self._unregister()
                raise ServerError(f"postgres exited on port {self.port}:\n{_tail(self.logfile)}")
            if _port_open(self.port):
                try:
                    with self._connect():
                        return
                except Exception:  # still starting up ("the database system is starting up")
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"postgres did not accept connections on {self.port}:\n{_tail(self.logfile)}"
                )
            time.sleep(0.03)

    def stop(self, remove: bool = True) -> None:
        """Fast shutdown (SIGINT); the cluster dir is removed if it lives outside ``tmpdir``."""
        self._kill_proc(signal.SIGINT, timeout=20)
        self._unregister()
        if remove and self.owns_basedir:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop(remove=False)
        self.start()

    # -- databases ----------------------------------------------------------
    def create_database(self, name: str, template: str = "template0") -> str:
        """CREATE DATABASE ``name`` (dropping an existing one) and return its SQLAlchemy URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"bad database name: {name!r}")
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE {template} ENCODING 'UTF8'")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __repr__(self) -> str:
        return f"<PostgresServer {self.url} running={self.running}>"


def start_postgres(tmpdir: str | os.PathLike[str], port: int | None = None) -> PostgresServer:
    """initdb a fresh cluster and start it on 127.0.0.1 (superuser ``postgres``, trust auth).

    ``.url`` points at a database ``followup`` created at startup.
    """
    bindir = pg_bindir()
    tmp = Path(tmpdir)
    tmp.mkdir(parents=True, exist_ok=True)
    user = _pg_os_user()
    if user is None:
        basedir = Path(tempfile.mkdtemp(prefix="postgres-", dir=str(tmp)))
        owns = False
        if len(str(basedir / "sock" / ".s.PGSQL.65535.lock")) > 100:  # unix socket path limit
            basedir = Path(tempfile.mkdtemp(prefix=_STALE_PREFIX))
            owns = True
    else:
        # pytest's tmp dirs are 0700 root-owned: the postgres user can't enter them, so the
        # cluster lives in the system temp dir, owned by that user; a symlink in tmpdir points to it.
        _clean_stale_dirs()
        basedir = Path(tempfile.mkdtemp(prefix=_STALE_PREFIX))
        os.chown(basedir, user.pw_uid, user.pw_gid)
        owns = True
        with contextlib.suppress(OSError):
            (Path(tempfile.mkdtemp(prefix="postgres-", dir=str(tmp))) / "cluster").symlink_to(basedir)
    if owns:
        (basedir / "owner.pid").write_text(str(os.getpid()))
    sockdir = basedir / "sock"
    sockdir.mkdir()
    if user is not None:
        os.chown(sockdir, user.pw_uid, user.pw_gid)

    server = PostgresServer(tmp, basedir, port or free_port(), bindir, user, owns)
    try:
        server._initdb()
        attempts = 1 if port is not None else 5
        for i in range(attempts):
            try:
                server.start()
                break
            except ServerError:
                if i == attempts - 1:
                    raise
                server.port = free_port()  # port raced away? try another one
        server.create_database(server.dbname)
    except BaseException:
        server.stop()
        raise
    return server
