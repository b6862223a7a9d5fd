"""Throwaway PostgreSQL and S3 servers on loopback, for tests and `scripts/stack.py`.

The production shape (Prefect and the journal on PostgreSQL, ledger and archive on an object
store) has to run on one machine for a test, started and stopped by the test. Both servers bind
127.0.0.1 only, on a free port. PostgreSQL is Debian's (`initdb` and `pg_ctl`); `initdb` refuses
to run as root, so as root every cluster command runs as the `postgres` user, in a folder that
user owns. S3 is moto's server (MinIO's server is not installable here). `stop()` leaves no
process behind; a folder made here is removed with it, a folder passed in is kept (the stack's
cluster survives `down` like its SQLite file did).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SUPERUSER = "postgres"
DATABASE = "reelflow"
# what moto accepts, as a process's environment and as boto3's arguments
S3_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}
S3_CREDENTIALS = {"aws_access_key_id": S3_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
                  "aws_secret_access_key": S3_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
                  "region_name": S3_ENVIRONMENT["AWS_DEFAULT_REGION"]}


class ServiceFailed(RuntimeError):
    """A server did not start or stop; the message is one line that says why."""


class PostgresNotInstalled(ServiceFailed):
    """No initdb/pg_ctl on this machine: tests skip (or fail under CI) on exactly this."""


def free_port() -> int:
    """A loopback port nobody holds right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie counts as gone (reaped when it is our child: PID 1 here
    does not reap the postmaster that pg_ctl leaves behind)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    if state != "Z":
        return True
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return False


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (flow runs start their own sessions: a group kill misses
    them), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds spent by `pid` and everything under it so far: utime+stime+cutime+cstime
    of each process of the tree alive now (an ended child's time is in its parent's cutime
    once reaped, as a process worker reaps its flow runs; a child ended but not yet reaped is
    missed). 0 when `pid` is gone."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(tick) for tick in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def stop_process(pid: int, signals: tuple[int, ...] = (signal.SIGTERM,),
                 grace: float = 10.0) -> str:
    """Send each signal to the process group of `pid` in turn while it runs, waiting `grace`
    seconds after each; SIGKILL when it still runs. Returns "stopped" or "killed"."""
    for sig in signals:
        if not alive(pid):
            return "stopped"
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return "stopped"
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
    if not alive(pid):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return "killed"


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: `pg_config --bindir` (it may name a libpq-only install, so
    initdb is checked), else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda path: _version(path.parent.name), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresNotInstalled("PostgreSQL's initdb and pg_ctl were not found (pg_config "
                               "--bindir, /usr/lib/postgresql/*/bin): install Debian's "
                               "`postgresql` package")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _as_cluster_owner(args: list[str]) -> list[str]:
    """initdb and pg_ctl refuse root: as root they run as the postgres user."""
    return ["runuser", "-u", SUPERUSER, "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], cwd: Path, log: Path | None = None) -> None:
    """Run a cluster command; its failure as one line, the server's own reason first (from
    `log`: the folder and its log may be gone by the time anyone looks)."""
    done = subprocess.run(_as_cluster_owner(args), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        logged = log.read_text(errors="replace").splitlines() if log and log.exists() else []
        lines = [*logged, *(done.stderr or done.stdout).strip().splitlines()] or ["no output"]
        reason = next((line for line in lines if "FATAL" in line or "error" in line.lower()),
                      lines[-1])
        raise ServiceFailed(f"{Path(args[0]).name} {args[1]} failed ({done.returncode}): "
                            f"{reason.strip()}")


@dataclass
class LocalPostgres:
    """A running cluster; databases are reached over TCP on loopback as `postgres` (trust)."""

    folder: Path
    port: int
    pid: int
    bindir: Path = field(repr=False)
    owns_folder: bool = field(default=False, repr=False)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        """The `reelflow` database, made at start."""
        return self.database_url(DATABASE)

    def database_url(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create `name` unless it exists (a restarted stack finds its databases); its URL."""
        from psycopg import sql  # the postgres extra: only who starts a cluster needs it

        with self._admin() as con:
            if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (name,)).fetchone():
                con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing whatever connections a test left open."""
        from psycopg import sql

        with self._admin() as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    def _admin(self):
        import psycopg

        return psycopg.connect(self.database_url("postgres"), autocommit=True)

    def stop(self) -> None:
        """A fast shutdown (open sessions are ended), then the folder if it was made here."""
        if alive(self.pid):
            _run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                  "-w", "-t", "60"], self.folder)
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(folder: Path | None = None, *, port: int | None = None,
                   fsync: bool = True) -> LocalPostgres:
    """A cluster in `folder` (a fresh one under /tmp when None: pytest's tmp folders are closed
    to other users) on `port` (a free one when None), with the `reelflow` database. A folder
    that already holds a cluster is started again, with this call's port and fsync.
    fsync=False is for throwaway clusters only: a crash may corrupt them."""
    bindir = postgres_bindir()
    owns_folder = folder is None
    folder = Path(tempfile.mkdtemp(prefix="reelflow-pg-")) if folder is None else folder
    cluster = None
    try:
        cluster = _start(bindir, folder, port or free_port(), fsync, owns_folder)
        cluster.create_database(DATABASE)
    except BaseException:  # nothing half-started is left running or on disk
        if cluster is not None:
            cluster.stop()
        elif owns_folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return cluster


def _start(bindir: Path, folder: Path, port: int, fsync: bool,
           owns_folder: bool) -> LocalPostgres:
    _prepare_folder(folder)
    data = folder / "data"
    if not (data / "PG_VERSION").exists():
        _run([str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", SUPERUSER,
              "-E", "UTF8", "--locale=C", *([] if fsync else ["--no-sync"])], folder)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("include = 'reelflow.conf'\n")
    _write_settings(data, folder, port, fsync)
    log = folder / "postgres.log"
    _run([str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "60"],
         folder, log)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    return LocalPostgres(folder=folder, port=port, pid=pid, bindir=bindir,
                         owns_folder=owns_folder)


def _prepare_folder(folder: Path) -> None:
    """As root, the folder goes to the postgres user, who must also reach it."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    folder.chmod(0o755)
    shutil.chown(folder, SUPERUSER, SUPERUSER)
    reach = subprocess.run(_as_cluster_owner(["test", "-w", str(folder)]))
    if reach.returncode != 0:
        raise ServiceFailed(f"the postgres user cannot reach {folder}: make its parent folders "
                           "traversable (chmod o+x) or choose another folder")


def _write_settings(data: Path, folder: Path, port: int, fsync: bool) -> None:
    """This run's settings, in their own file (rewritten at every start; postgresql.conf
    includes it) so a restarted cluster takes a new port."""
    settings = {"listen_addresses": "'127.0.0.1'", "port": str(port),
                "unix_socket_directories": f"'{folder}'", "max_connections": "300",
                "fsync": "on" if fsync else "off",
                "synchronous_commit": "on" if fsync else "off"}
    path = data / "reelflow.conf"
    path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    if os.geteuid() == 0:
        shutil.chown(path, SUPERUSER, SUPERUSER)


@dataclass
class LocalS3:
    """moto's S3 server; any bucket, any key, credentials "testing"."""

    endpoint_url: str
    pid: int
    folder: Path
    process: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def create_bucket(self, name: str) -> None:
        import boto3  # the test extra: only who starts moto needs it

        client = boto3.client("s3", endpoint_url=self.endpoint_url, **S3_CREDENTIALS)
        client.create_bucket(Bucket=name)

    def stop(self) -> None:
        stop_process(self.pid)
        if self.process is not None:
            self.process.wait(timeout=10)


def start_s3(folder: Path, *, timeout: float = 30.0) -> LocalS3:
    """moto_server on a free loopback port (its log in `folder`); returns once it answers."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.is_file():
        raise ServiceFailed(f"{binary} not found: install reelflow's test extra (moto[s3])")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (folder / "moto.log").open("ab") as log:
        process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    s3 = LocalS3(endpoint_url=f"http://127.0.0.1:{port}", pid=process.pid, folder=folder,
                 process=process)
    try:
        _wait_answering(s3, timeout)
    except BaseException:
        s3.stop()
        raise
    return s3


def _wait_answering(s3: LocalS3, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(s3.pid):
            raise ServiceFailed(f"moto_server exited; see {s3.folder / 'moto.log'}")
        try:
            httpx.get(s3.endpoint_url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise ServiceFailed(f"moto_server did not answer within {timeout:.0f} s")
