"""A throwaway PostgreSQL server for the tuning tests, and the worker process they spawn.

`postgres_url` (session-scoped) starts a cluster in a temporary folder with `initdb`/`pg_ctl` on a
free localhost port (as the `postgres` user when running as root: the server refuses root),
creates a database, yields its SQLAlchemy URL and stops the server at the end. Set
`TSK_TEST_POSTGRES_URL` to use a server of your own instead. The test is skipped, saying why, only
when no server can be started (`.ci/run` installs PostgreSQL with apt-get when it is missing).

Run as a script, this module is one tuning worker: `python -m tests.tuning_fixtures STUDY N_TRIALS
SEED URL...` tunes a tiny LSTM on a shared study in each storage and prints, as JSON, the trial
numbers it ran.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres_user(args: list[str]) -> list[str]:
    """Run as `postgres` when we are root (the server refuses to run as root)."""
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *args]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in args)]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if os.environ.get("TSK_TEST_POSTGRES_URL"):
        yield os.environ["TSK_TEST_POSTGRES_URL"]
        return
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no pg_ctl/initdb on PATH or in "
                    "/usr/lib/postgresql/*/bin); .ci/run installs it with apt-get install postgresql")
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed (uv sync installs the dev group)")

    root = Path(tempfile.mkdtemp(prefix="tsk-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    if os.geteuid() == 0:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_postgres_user([str(bin_dir / args[0]), *args[1:]]),
                              capture_output=True, text=True, timeout=120, cwd=root)

    started = False
    try:
        step = run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync")
        if step.returncode != 0:
            pytest.skip(f"PostgreSQL initdb failed: {(step.stderr or step.stdout).strip()[-500:]}")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        step = run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                   "start")
        if step.returncode != 0:
            tail = log.read_text()[-500:] if log.is_file() else step.stderr
            pytest.skip(f"PostgreSQL could not be started: {tail.strip()}")
        started = True
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres",
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE tsk_test")
        connection.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/tsk_test"
    finally:
        if started:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def spawn_workers(urls: list[str], study: str, trials: list[int]) -> list[dict]:
    """One worker process per entry of `trials`, each tuning `trials[i]` trials on study `study`
    in every storage of `urls` in turn. Workers import first, then start together (so they
    really overlap); returns their reports `{"pid": ..., "trials": {url: [numbers]}}`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.tuning_fixtures", study, str(n), str(seed), *urls],
                         cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for seed, n in enumerate(trials)
    ]
    for proc in procs:  # wait until every worker is ready, then let them all go
        line = proc.stdout.readline().strip()
        assert line == "ready", f"worker did not start: {line!r} {proc.stderr.read()[-3000:]}"
    reports = []
    for proc in procs:
        out, err = proc.communicate("go\n", timeout=600)
        assert proc.returncode == 0, f"worker failed:\n{err[-3000:]}"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def _worker(study: str, n_trials: int, seed: int, urls: list[str]) -> None:
    import optuna
    from optuna.distributions import IntDistribution

    import tsk
    from tests.conftest import TINY, make_long

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = tsk.Forecaster("lstm", **{**TINY, "max_epochs": 1})
    data = make_long(n_series=2, length=60)
    print("ready", flush=True)
    sys.stdin.readline()
    ran = {}
    for url in urls:
        result = tsk.tune(model, data, space={"d_model": IntDistribution(4, 8)}, n_trials=n_trials,
                          storage=url, study_name=study, random_state=seed, pruner=None, refit=False)
        ran[url] = [t.number for t in result.study_.trials if t.user_attrs.get("pid") == os.getpid()]
    print(json.dumps({"pid": os.getpid(), "trials": ran}))


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
