"""A throwaway PostgreSQL server on loopback, for tests of Optuna's RDBStorage.

`start_postgres(tmp_dir)` initialises a fresh cluster with Debian's PostgreSQL binaries
(`make postgres` installs them), starts it on a free port of 127.0.0.1 with a
password-authenticated superuser `paretonas`, creates the database `paretonas` and returns
its SQLAlchemy URL. PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` system user that the Debian package creates.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

USER = "paretonas"
DATABASE = "paretonas"
SYSTEM_USER = "postgres"
INSTALL_HINT = "install Debian's postgresql package (apt-get install postgresql, or make postgres)"
# A unix socket path (directory + "/.s.PGSQL.NNNNN") must fit in sun_path (108 bytes).
_MAX_SOCKET_DIR = 80


@dataclass
class PostgresServer:
    """A running server; `url` reaches database `paretonas` as user `paretonas`."""

    url: str
    port: int
    password: str
    data_dir: Path
    log_file: Path
    _pg_ctl: Path = field(repr=False)
    _run_as: list[str] = field(repr=False)
    _cleanup_dir: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server at once (no checkpoint); safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        subprocess.run(
            [
                *self._run_as,
                str(self._pg_ctl),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            cwd=self.data_dir.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if self._cleanup_dir is not None:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: Debian's newest, or the one on PATH."""
    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    candidates = [d for d in candidates if (d / "pg_ctl").is_file()]
    if candidates:
        return max(candidates, key=_version_key)
    initdb = shutil.which("initdb")
    if initdb:
        bin_dir = Path(initdb).resolve().parent
        if (bin_dir / "pg_ctl").is_file():
            return bin_dir
    raise RuntimeError(
        f"PostgreSQL's initdb and pg_ctl were not found under /usr/lib/postgresql/*/bin "
        f"nor on PATH: {INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], cwd: Path, what: str, log_file: Path | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log = ""
        if log_file is not None and log_file.is_file():
            log = "\n--- server log ---\n" + log_file.read_text(errors="replace")[-4000:]
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {shlex.join(cmd)}\n"
            f"{result.stdout}{result.stderr}{log}"
        )


def start_postgres(tmp_dir: Path) -> PostgresServer:
    """Initialise and start a fresh server; call `stop()` on the result when done."""
    bin_dir = find_bin_dir()
    as_root = os.geteuid() == 0
    run_as: list[str] = []
    cleanup_dir: Path | None = None
    if as_root:
        try:
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError as exc:
            raise RuntimeError(
                f"running as root, but there is no '{SYSTEM_USER}' system user to run "
                f"PostgreSQL as (it refuses to run as root): {INSTALL_HINT}"
            ) from exc
        runuser = shutil.which("runuser")
        if runuser:
            run_as = [runuser, "-u", SYSTEM_USER, "--"]
        else:
            su = shutil.which("su") or "su"
            run_as = [su, SYSTEM_USER, "-s", "/bin/sh", "-c", '"$0" "$@"']
        # pytest's temp directories are private to root (0700), so the cluster lives in a
        # fresh directory of the system temp dir that the postgres user owns.
        base = Path(tempfile.mkdtemp(prefix="paretonas-pg-"))
        cleanup_dir = base
        os.chown(base, entry.pw_uid, entry.pw_gid)
    else:
        tmp_dir = Path(tmp_dir)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="pg-", dir=tmp_dir))
        if len(str(base)) > _MAX_SOCKET_DIR:
            shutil.rmtree(base, ignore_errors=True)
            base = Path(tempfile.mkdtemp(prefix="paretonas-pg-"))
            cleanup_dir = base
    base.chmod(0o700)

    data_dir = base / "data"
    log_file = base / "postgres.log"
    password = secrets.token_hex(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if as_root:
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pg_ctl = bin_dir / "pg_ctl"

    try:
        _run(
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=md5",  # md5 also accepts SCRAM-stored passwords
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=base,
            what="initdb",
        )
        pwfile.unlink()

        last_error: RuntimeError | None = None
        for _ in range(3):  # the free port may be taken between the probe and the start
            port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={port}",
                    f"-c unix_socket_directories={shlex.quote(str(base))}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            try:
                _run(
                    [
                        *run_as,
                        str(pg_ctl),
                        "-D",
                        str(data_dir),
                        "-l",
                        str(log_file),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        options,
                        "start",
                    ],
                    cwd=base,
                    what="pg_ctl start",
                    log_file=log_file,
                )
                break
            except RuntimeError as exc:
                last_error = exc
        else:
            assert last_error is not None
            raise last_error

        server = PostgresServer(
            url=f"postgresql+psycopg2://{USER}:{password}@127.0.0.1:{port}/{DATABASE}",
            port=port,
            password=password,
            data_dir=data_dir,
            log_file=log_file,
            _pg_ctl=pg_ctl,
            _run_as=run_as,
            _cleanup_dir=cleanup_dir,
        )
        try:
            _create_database(port, password)
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        if cleanup_dir is not None and not (data_dir / "postmaster.pid").exists():
            shutil.rmtree(cleanup_dir, ignore_errors=True)
        raise


def _create_database(port: int, password: str) -> None:
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1", port=port, user=USER, password=password, dbname="postgres"
    )
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        conn.close()
