"""psycopg 3 through the pooler port, with its default prepare_threshold:
several connections of one identity run the same statements often enough
to have them prepared (named "_pg3_0", "_pg3_1"... on every connection),
across transactions that PgBouncer's transaction pool serves on any server
connection; pipeline mode with an error in the middle; binary results.

    python3 psycopg_prepared.py CONNINFO NCONN ROUNDS

Prints "ok ..." lines; raises (exit 1) on the first failure.
"""
import sys

import psycopg
from psycopg import errors

conninfo, nconn, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = [psycopg.connect(conninfo) for _ in range(nconn)]
assert conns[0].prepare_threshold == 5, conns[0].prepare_threshold

for k in range(rounds):
    for i, c in enumerate(conns):
        v = k * 100 + i
        assert c.execute("SELECT %s::int + 1", (v,)).fetchone()[0] == v + 1
        assert c.execute("SELECT %s::text || %s::text", ("a", str(i))).fetchone()[0] == f"a{i}"
        cur = c.cursor(binary=True)
        assert cur.execute("SELECT %s::int * 2", (v,)).fetchone()[0] == 2 * v
        c.commit()
print(f"ok {nconn} connections x {rounds} rounds, statements prepared")

# the statements really were prepared (named) by psycopg
prepared = conns[0]._prepared._names if hasattr(conns[0], "_prepared") else {}
print(f"ok psycopg holds {len(prepared)} prepared statements")
assert len(prepared) >= 3, prepared

# autocommit connections: every statement its own transaction
for c in conns:
    c.autocommit = True
for k in range(rounds):
    for i, c in enumerate(conns):
        assert c.execute("SELECT %s::int + 1", (k,)).fetchone()[0] == k + 1
print("ok autocommit")

# pipeline mode, an error in the middle, then the statements still work
c = conns[0]
try:
    with c.pipeline():
        c.execute("SELECT %s::int + 1", (1,))
        c.execute("SELECT 1 / %s::int", (0,))
        c.execute("SELECT %s::int + 1", (2,))
except errors.DivisionByZero:
    print("ok pipeline error reported")
else:
    raise AssertionError("no error from the pipeline")
with c.pipeline():
    curs = [c.execute("SELECT %s::int + 1", (j,)) for j in range(20)]
assert [cur.fetchone()[0] for cur in curs] == list(range(1, 21))
print("ok pipeline after the error")

# prepare=True makes a named statement at once, on every connection
for i, c in enumerate(conns):
    assert c.execute("SELECT %s::int + 10", (i,), prepare=True).fetchone()[0] == i + 10
    assert c.execute("SELECT %s::int + 10", (i,), prepare=True).fetchone()[0] == i + 10
print("ok prepare=True")

# more than psycopg's 100 cached statements: it sends DEALLOCATE <name>
# for the oldest, which the proxy answers for the statements it keeps
c = conns[1]
for j in range(130):
    for _ in range(6):
        assert c.execute(f"SELECT %s::int + {j}", (1,)).fetchone()[0] == j + 1
assert c.execute("SELECT 1 + 0").fetchone()[0] == 1
print("ok 130 statements on one connection, the oldest deallocated")

for c in conns:
    c.close()
print("ok done")
