"""The embedded PostgreSQL as the service's processes use it: one server per DATA_DIR shared by
every process, stopped by the last to leave however the others ended, and a data directory made by
another major version refused with one line that says what to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from app import embedded_postgres
from tests.helpers.processes import BIN, ServiceProcess, clean_env, free_port, wait_until

JOIN = (
    "import sys; from pathlib import Path; from app.embedded_postgres import start; "
    "print(start(Path(sys.argv[1])), flush=True); sys.stdin.read()"
)


class Member:
    """A process that joins the embedded server of `data_dir` and stays until told to leave."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", JOIN, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()  # "" when it failed and exited
        assert self.url.startswith("postgresql://"), f"joining failed: {self.process.wait(30)}"

    def leave(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the process ends normally, leaving at exit
        assert self.process.wait(60) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)


def postmaster(data_dir: Path) -> int | None:
    """The pid of the live postmaster of `data_dir`, if any (without tidying anything up)."""
    pgdata = embedded_postgres.pgdata_path(data_dir)
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:
        return None
    return pid if embedded_postgres._is_postmaster_of(pid, pgdata) else None


def answers(url: str) -> bool:
    import asyncio

    async def ask() -> bool:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return bool(await connection.fetchval("SELECT true"))
        finally:
            await connection.close()

    return asyncio.run(ask())


def test_the_last_process_to_leave_stops_the_server(tmp_path: Path) -> None:
    first, second = Member(tmp_path), Member(tmp_path)
    assert first.url == second.url and answers(second.url)
    first.leave()
    assert postmaster(tmp_path) is not None, "stopped while another process used it"
    assert answers(second.url)
    second.leave()
    assert postmaster(tmp_path) is None, "the server outlived its last user"


def test_a_killed_process_does_not_keep_the_server_running(tmp_path: Path) -> None:
    killed, survivor = Member(tmp_path), Member(tmp_path)
    killed.kill()  # SIGKILL: no clean-up of its own runs
    survivor.leave()
    assert postmaster(tmp_path) is None, "a dead process still counted as a user"


def test_a_server_whose_users_all_died_is_stopped_by_the_next_to_leave(tmp_path: Path) -> None:
    Member(tmp_path).kill()
    assert postmaster(tmp_path) is not None  # nobody left to stop it, until someone comes
    newcomer = Member(tmp_path)
    assert answers(newcomer.url)
    newcomer.leave()
    assert postmaster(tmp_path) is None


def test_a_killed_server_is_started_again_by_the_next_process(tmp_path: Path) -> None:
    holder = Member(tmp_path)
    pid = postmaster(tmp_path)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: postmaster(tmp_path) is None, 30, "the postmaster to die")
    assert (embedded_postgres.pgdata_path(tmp_path) / "postmaster.pid").exists(), "not stale"
    newcomer = Member(tmp_path)
    assert answers(newcomer.url)
    holder.leave()
    newcomer.leave()
    assert postmaster(tmp_path) is None


def test_a_stale_pid_file_naming_another_process_is_ignored(tmp_path: Path) -> None:
    Member(tmp_path).leave()  # a cluster, stopped
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        pidfile = embedded_postgres.pgdata_path(tmp_path) / "postmaster.pid"
        pgdata = str(embedded_postgres.pgdata_path(tmp_path))
        pidfile.write_text(f"{bystander.pid}\n{pgdata}\n1\n5432\n{pgdata}\n\n1 2\nready\n")
        member = Member(tmp_path)
        assert answers(member.url)
        member.leave()
        assert postmaster(tmp_path) is None
        assert bystander.poll() is None, "a process named in a stale postmaster.pid was signalled"
    finally:
        bystander.kill()
        bystander.wait(10)


def test_an_interrupted_initdb_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    scratch = tmp_path / ".postgres.initdb"
    scratch.mkdir()
    (scratch / "PG_VERSION").write_text("18\n")  # what a killed initdb may leave
    member = Member(tmp_path)
    assert answers(member.url)
    member.leave()
    assert not scratch.exists()


def test_a_directory_without_a_cluster_is_never_written_over(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    (pgdata / "notes.txt").write_text("mine")
    with pytest.raises(embedded_postgres.EmbeddedPostgresError, match="no PG_VERSION"):
        embedded_postgres.start(tmp_path)
    assert (pgdata / "notes.txt").read_text() == "mine"


def _old_cluster(data_dir: Path, major: int = 16) -> Path:
    """What an earlier storekit-sync left: a cluster made by PostgreSQL `major`."""
    pgdata = data_dir / "postgres"
    (pgdata / "base" / "1").mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text(f"{major}\n")
    (pgdata / "base" / "1" / "1259").write_bytes(b"\x01" * 8192)
    return pgdata


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", [["migrate"], ["serve", "--port", "0"]])
def test_an_older_data_dir_stops_with_one_line(tmp_path: Path, command: list[str]) -> None:
    pgdata = _old_cluster(tmp_path)
    before = _files(pgdata)
    result = subprocess.run(
        [str(BIN), *command],
        env=clean_env(DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    needed = embedded_postgres.server_version()
    for words in (
        "PostgreSQL 16 database",
        f"runs PostgreSQL {needed}",
        "dev --fresh",
        "restoring",
    ):
        assert words in lines[0], words
    assert lines[0].startswith("storekit-sync: ")
    assert _files(pgdata) == before, "the old data was touched"
    assert not list(tmp_path.glob("postgres.pg*")), "moved aside without being asked"


def test_dev_fresh_moves_the_old_data_aside_and_starts(tmp_path: Path) -> None:
    before = _files(_old_cluster(tmp_path))
    port, sim_port = free_port(), free_port()
    args = ["dev", "--fresh", "--port", str(port), "--simulator-port", str(sim_port)]
    env = clean_env(DATA_DIR=str(tmp_path), COLUMNS="200")
    dev = ServiceProcess(args, env, tmp_path / "dev.log")
    try:
        wait_until(lambda: "Then poll" in dev.output(), 90, "dev to print its welcome")
    finally:
        assert dev.stop(signal.SIGINT) == 0, dev.output()
    (aside,) = tmp_path.glob("postgres.pg16-*")
    assert f"moved the old database aside to {aside}" in dev.output()
    assert _files(aside) == before, "the old data was changed while moved aside"
    new_version = (tmp_path / "postgres" / "PG_VERSION").read_text().strip()
    assert new_version == str(embedded_postgres.server_version())


def test_set_aside_refuses_a_running_server(tmp_path: Path) -> None:
    member = Member(tmp_path)
    try:
        with pytest.raises(embedded_postgres.EmbeddedPostgresError, match="in use"):
            embedded_postgres.set_aside(tmp_path)
    finally:
        member.leave()
    assert (tmp_path / "postgres" / "PG_VERSION").exists()
