"""psycopg 3 through agentgate-proxy with its defaults: prepare_threshold
= 5 (a query run five times on a connection becomes a named server-side
statement, "_pg3_0"...), pipeline mode, binary cursors; TLS verify-full
against the CA file; the token read from the file at every connect (the
refresh hook is simply: read the token when opening a connection).
Prints "CHECK name ok|fail detail" lines."""
import os
import shutil
import threading
import time

import psycopg

from checks import check, step

env = os.environ


def conninfo():
    return psycopg.conninfo.make_conninfo(
        host=env["AG_HOST"], port=env["AG_PORT"], dbname=env["AG_DB"],
        user="agent", sslmode="verify-full", sslrootcert=env["AG_CA"])


def connect(**kw):
    with open(env["AG_TOKEN_FILE"]) as f:
        token = f.read().strip()
    return psycopg.connect(conninfo(), password=token, **kw)


def parallel(n, per, binary=False):
    errors, sids = [], set()

    def worker(ci):
        try:
            with connect() as conn:
                for i in range(per):
                    v = ci * 1000 + i
                    with conn.cursor(binary=binary) as cur:
                        cur.execute("SELECT %s::int + 1, agentgate.session_id(), "
                                    "(SELECT name FROM items WHERE id = %s)", (v, i % 100 + 1))
                        r = cur.fetchone()
                    if r[0] != v + 1 or r[2] != f"item {i % 100 + 1}":
                        raise AssertionError(f"wrong answer {r} for {v}")
                    sids.add(r[1])
                    conn.commit()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(c,)) for c in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    if errors:
        raise errors[0]
    return f"{n} connections x {per} statements, {len(sids)} sessions"


role = None


@step("connect")
def _():
    global role
    with connect() as conn:
        role = conn.execute("SELECT session_user").fetchone()[0]
        assert role.startswith("agent_"), role
        assert conn.prepare_threshold == 5, conn.prepare_threshold
        return role


# below prepare_threshold: unnamed statements only
step("unnamed")(lambda: parallel(4, 4))
# past it (default settings): named statements on every connection
step("named")(lambda: parallel(4, 25))
step("named_binary")(lambda: parallel(4, 25, binary=True))


@step("pipeline")
def _():
    with connect(prepare_threshold=None) as conn:
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
        got = [c.fetchone()[0] for c in curs]
        assert got == [i * 2 for i in range(50)], got
        return "50 statements in one pipeline"


@step("pipeline_named")
def _():
    with connect() as conn:
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 3", (i,)) for i in range(50)]
        got = [c.fetchone()[0] for c in curs]
        assert got == [i * 3 for i in range(50)], got
        return "50 statements in one pipeline, prepared past the threshold"


@step("binary")
def _():
    with connect(prepare_threshold=None) as conn:
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT id, name FROM items WHERE id <= %s ORDER BY id", (10,))
            rows = cur.fetchall()
        assert len(rows) == 10 and rows[9] == (10, "item 10"), rows
        return "binary results"


@step("refusal")
def _():
    with connect() as conn:
        try:
            conn.execute("DELETE FROM items")
        except psycopg.errors.InsufficientPrivilege as e:
            assert "agentgate" in str(e), str(e)
            conn.rollback()
            n = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            return f"{str(e).splitlines()[0]}; {n} rows kept"
        raise AssertionError("DELETE without WHERE was not refused")


@step("refusal_in_pipeline")
def _():
    # an error mid-pipeline: what follows it in the same transaction fails,
    # the next transaction works
    with connect(prepare_threshold=None) as conn:
        try:
            with conn.pipeline():
                conn.execute("SELECT 1")
                conn.execute("DELETE FROM items")
                conn.execute("SELECT 2")
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
            assert conn.execute("SELECT 3").fetchone()[0] == 3
            return "refused mid-pipeline, connection still usable"
        raise AssertionError("not refused")


@step("cancel")
def _():
    with connect() as conn:
        threading.Timer(0.5, conn.cancel).start()
        t0 = time.time()
        try:
            conn.execute("SELECT pg_sleep(20)")
        except psycopg.errors.QueryCanceled:
            return f"cancelled after {int((time.time() - t0) * 1000)} ms"
        raise AssertionError("not cancelled")


@step("listen")
def _():
    with connect(autocommit=True) as conn:
        try:
            conn.execute("LISTEN jobs")
        except psycopg.errors.InsufficientPrivilege as e:
            assert "LISTEN would lose notifications" in (e.diag.message_detail or ""), e.diag.message_detail
            return str(e).splitlines()[0]
        raise AssertionError("LISTEN was accepted")


@step("rotation")
def _():
    shutil.copyfile(env["AG_TOKEN_NEXT_FILE"], env["AG_TOKEN_FILE"])
    with connect() as conn:
        r = conn.execute("SELECT session_user").fetchone()[0]
        assert r == role, (r, role)
        return "same role with the refreshed token"
