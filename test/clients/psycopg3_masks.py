"""Column masks through agentgate-proxy and PgBouncer with psycopg 3: the
extended protocol (server-side parameters), in text and in binary format,
a statement prepared by the driver (prepare_threshold) that is planned
again when a mask changes, and COPY TO.  Prints "CHECK name ok|fail
detail" lines; the DBA's connection is AG_DBA (a libpq conninfo)."""
import os

import psycopg

from checks import check, step

env = os.environ


def connect():
    with open(env["AG_TOKEN_FILE"]) as f:
        token = f.read().strip()
    return psycopg.connect(psycopg.conninfo.make_conninfo(
        host=env["AG_HOST"], port=env["AG_PORT"], dbname=env["AG_DB"],
        user="agent", sslmode="verify-full", sslrootcert=env["AG_CA"]),
        password=token, autocommit=True)


def expect(got, want):
    if got != want:
        raise AssertionError(f"got {got!r}, want {want!r}")
    return repr(got)


QUERY = "SELECT ssn, salary, born, note FROM people WHERE id = %s"


@step("text")
def _():
    import datetime
    with connect() as conn, conn.cursor() as cur:
        cur.execute(QUERY, (1,))
        return expect(cur.fetchone(), ("xxxxxxx1111", 0, datetime.date(1970, 1, 1), "real note"))


@step("binary")
def _():
    import datetime
    with connect() as conn, conn.cursor(binary=True) as cur:
        cur.execute(QUERY, (1,))
        r = cur.fetchone()
        expect(r, ("xxxxxxx1111", 0, datetime.date(1970, 1, 1), "real note"))
        cur.execute("SELECT count(*) FROM people WHERE ssn = %s", ("111-11-1111",))
        return expect(cur.fetchone()[0], 0)


@step("prepared_replanned")
def _():
    with connect() as conn, psycopg.connect(env["AG_DBA"], autocommit=True) as dba:
        conn.prepare_threshold = 0      # every statement a named server-side one
        q = "SELECT note FROM people WHERE id = %s"
        first = conn.execute(q, (1,)).fetchone()[0]
        dba.execute("SELECT agentgate.mask('people', 'note', 'null')")
        second = conn.execute(q, (1,)).fetchone()[0]
        dba.execute("DELETE FROM agentgate.masks WHERE column_name = 'note'")
        third = conn.execute(q, (1,)).fetchone()[0]
        return expect((first, second, third), ("real note", None, "real note"))


@step("copy")
def _():
    with connect() as conn, conn.cursor() as cur:
        with cur.copy("COPY people (id, ssn) TO STDOUT") as copy:
            rows = [r for r in copy.rows()]
        return expect(rows[0], ("1", "xxxxxxx1111"))


@step("copy_binary")
def _():
    with connect() as conn, conn.cursor() as cur:
        with cur.copy("COPY people (ssn) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["text"])
            rows = [r for r in copy.rows()]
        return expect(rows[0], ("xxxxxxx1111",))
