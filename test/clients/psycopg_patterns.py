"""psycopg 3 through agentgate-proxy, reading values that hold secrets:
the extended protocol in text and binary format, COPY TO STDOUT, a NOTICE
and an error.  Prints "R label json-value" lines for the TAP test
(test/t/215_patterns.pl) to compare; TLS verify-full against the CA file."""
import json
import os

import psycopg

env = os.environ


def out(label, value):
    print(f"R {label} {json.dumps(value, default=str)}", flush=True)


def connect():
    with open(env["AG_TOKEN_FILE"]) as f:
        token = f.read().strip()
    return psycopg.connect(psycopg.conninfo.make_conninfo(
        host=env["AG_HOST"], port=env["AG_PORT"], dbname=env["AG_DB"],
        user="agent", sslmode="verify-full", sslrootcert=env["AG_CA"]), password=token)


with connect() as conn:
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))

    # extended protocol, text format (a parameter makes psycopg use it)
    with conn.cursor() as cur:
        cur.execute("SELECT note, doc::text, big FROM secrets WHERE id = %s", (1,))
        out("ext_text", list(cur.fetchone()))
    # extended protocol, binary format: text, jsonb and int8 columns
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT note, doc, big, card_int FROM secrets WHERE id = %s", (1,))
        out("ext_binary", list(cur.fetchone()))
    # the same statement prepared (named, described once)
    with conn.cursor() as cur:
        for _ in range(6):
            cur.execute("SELECT note FROM secrets WHERE id = %s", (2,), prepare=True)
        out("prepared", cur.fetchone()[0])
    # COPY ... TO STDOUT, text and CSV
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, note FROM secrets ORDER BY id) TO STDOUT") as cp:
            out("copy_text", b"".join(bytes(b) for b in cp).decode())
        with cur.copy("COPY (SELECT id, note FROM secrets ORDER BY id) TO STDOUT (FORMAT csv)") as cp:
            out("copy_csv", b"".join(bytes(b) for b in cp).decode())
    # a NOTICE raised with a secret in it
    with conn.cursor() as cur:
        cur.execute("SELECT public.shout(%s)", ("card 4111 1111 1111 1111",))
    out("notice", notices)
    # an error whose message quotes the value
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT note::int FROM secrets WHERE id = 3")
        out("error", None)
    except psycopg.Error as e:
        out("error", e.diag.message_primary)
        conn.rollback()
