/*
 * pgstream_test.c
 *	  Unit tests of the protocol state machine (pgstream.c): named
 *	  statements kept by the proxy, answers in order, errors mid-pipeline,
 *	  DISCARD ALL, limits, framing refusals, byte-at-a-time input, and
 *	  the shared pool's carrier.
 */
#include "ag_pgstream.h"
#include "ag_pgproto.h"
#include "ag_test.h"
#include "ag_testmsg.h"

#include <stdlib.h>
#include <string.h>

static void
parse(m *x, const char *name, const char *q, int ntypes)
{
	m			b = {.n = 0};
	int			i;

	adds(&b, name);
	adds(&b, q);
	add16(&b, ntypes);
	for (i = 0; i < ntypes; i++)
		add32(&b, 23);
	msg(x, 'P', &b);
}

static void
bind(m *x, const char *portal, const char *name, const char *param)
{
	m			b = {.n = 0};

	adds(&b, portal);
	adds(&b, name);
	add16(&b, 0);				/* parameter formats */
	add16(&b, param ? 1 : 0);
	if (param)
	{
		add32(&b, (uint32_t) strlen(param));
		add(&b, param, strlen(param));
	}
	add16(&b, 0);				/* result formats */
	msg(x, 'B', &b);
}

static void
named(m *x, char t, char kind, const char *name)
{
	m			b = {.n = 0};

	add(&b, &kind, 1);
	adds(&b, name);
	msg(x, t, &b);
}

static void
empty(m *x, char t)
{
	m			b = {.n = 0};

	msg(x, t, &b);
}

static void
execute(m *x)
{
	m			b = {.n = 0};

	adds(&b, "");
	add32(&b, 0);
	msg(x, 'E', &b);
}

static void
tagged(m *x, char t, const char *s)
{
	m			b = {.n = 0};

	adds(&b, s);
	msg(x, t, &b);
}

static void
ready(m *x, char status)
{
	m			b = {.n = 0};

	add(&b, &status, 1);
	msg(x, 'Z', &b);
}

static void
error(m *x, const char *code)
{
	m			b = {.n = 0};

	add(&b, "C", 1);
	adds(&b, code);
	add(&b, "", 1);
	msg(x, 'E', &b);
}

/* The types of the messages in a byte stream, e.g. "PBES". */
static void
types(const ag_buf *q, char *out, size_t outsize)
{
	size_t		pos = 0;
	size_t		n = 0;

	while (pos + 5 <= q->len && n + 1 < outsize)
	{
		out[n++] = (char) q->data[q->off + pos];
		pos += 1 + ag_pg_get32(q->data + q->off + pos + 1);
	}
	out[n] = '\0';
}

/* The error code (C field) of the first ErrorResponse in q. */
static const char *
first_code(const ag_buf *q)
{
	static char code[6];
	size_t		pos = 0;

	code[0] = '\0';
	while (pos + 5 <= q->len)
	{
		const uint8_t *p = q->data + q->off + pos;
		uint32_t	len = ag_pg_get32(p + 1);

		if (p[0] == 'E')
		{
			const uint8_t *f = p + 5;

			while (f < p + 1 + len && *f)
			{
				if (*f == 'C')
				{
					snprintf(code, sizeof(code), "%s", (const char *) f + 1);
					return code;
				}
				f += 1 + strlen((const char *) f + 1) + 1;
			}
		}
		pos += 1 + len;
	}
	return code;
}

static ag_pgs_limits lim = {1 << 20, 100, 1 << 16};

typedef struct conn
{
	ag_pgstream *s;
	ag_buf		to_server;
	ag_buf		to_client;
	ag_buf		held;			/* client bytes a stall left over */
	int			bytewise;
} conn;

static void
conn_open(conn *c, int bytewise)
{
	m			login = {.n = 0};
	m			auth = {.n = 0};

	memset(c, 0, sizeof(*c));
	c->s = ag_pgs_new(&lim);
	c->bytewise = bytewise;
	add32(&auth, 0);
	msg(&login, 'R', &auth);
	ready(&login, 'I');
	ag_pgs_from_server(c->s, login.b, login.n, &c->to_client, &c->to_server);
	ag_buf_consume(&c->to_client, c->to_client.len);
}

static void
conn_close(conn *c)
{
	ag_pgs_free(c->s);
	ag_buf_free(&c->to_server);
	ag_buf_free(&c->to_client);
	ag_buf_free(&c->held);
}

/* Client bytes through the stream, the held ones first, as the relay does. */
static ag_pgs_status
feed_client(conn *c, const uint8_t *p, size_t n)
{
	size_t		used;
	ag_pgs_status st;

	if (c->held.len > 0 || n == 0)
	{
		ag_buf_add(&c->held, p, n);
		st = ag_pgs_from_client(c->s, c->held.data + c->held.off, c->held.len, &used,
								&c->to_server, &c->to_client);
		ag_buf_consume(&c->held, used);
		return st;
	}
	st = ag_pgs_from_client(c->s, p, n, &used, &c->to_server, &c->to_client);
	ag_buf_add(&c->held, p + used, n - used);
	return st;
}

static ag_pgs_status
from_client(conn *c, const m *x)
{
	size_t		i;
	ag_pgs_status st = AG_PGS_OK;

	ag_buf_consume(&c->to_server, c->to_server.len);
	ag_buf_consume(&c->to_client, c->to_client.len);
	if (!c->bytewise)
		return feed_client(c, x->b, x->n);
	for (i = 0; i < x->n && st == AG_PGS_OK; i++)
		st = feed_client(c, x->b + i, 1);
	return st;
}

static ag_pgs_status
from_server(conn *c, const m *x)
{
	size_t		i;
	ag_pgs_status st = AG_PGS_OK;

	ag_buf_consume(&c->to_client, c->to_client.len);
	ag_buf_consume(&c->to_server, c->to_server.len);
	for (i = 0; i < x->n && st == AG_PGS_OK; i += c->bytewise ? 1 : x->n)
	{
		st = ag_pgs_from_server(c->s, x->b + i, c->bytewise ? 1 : x->n, &c->to_client,
								&c->to_server);
		if (st == AG_PGS_OK && c->held.len > 0)
			st = feed_client(c, NULL, 0);
	}
	return st;
}

static void
expect(const ag_buf *q, const char *want, const char *what, int bytewise)
{
	char		got[256];

	types(q, got, sizeof(got));
	ok(strcmp(got, want) == 0, "%s%s: got \"%s\", want \"%s\"", what,
	   bytewise ? " (bytewise)" : "", got, want);
}

static void
run(int bw)
{
	conn		c;
	m			x;
	m			y;

	/* --- prepare, then execute twice, each in its own Sync */
	conn_open(&c, bw);
	x.n = 0;
	parse(&x, "s1", "SELECT $1::int", 1);
	empty(&x, 'S');
	ok(from_client(&c, &x) == AG_PGS_OK, "named parse accepted");
	expect(&c.to_server, "PS", "named Parse goes as Parse+Sync", bw);
	ok(c.to_server.data[c.to_server.off + 5] == 0, "and the Parse sent is unnamed");
	y.n = 0;
	tagged(&y, '1', "");
	y.n = 0;
	empty(&y, '1');
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "1Z", "server's ParseComplete answers the client", bw);
	ok(ag_pgs_statements(c.s, NULL) == 1, "one statement kept");

	x.n = 0;
	bind(&x, "", "s1", "42");
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PBES", "Bind(s1) becomes Parse+Bind", bw);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '2');
	tagged(&y, 'D', "x");
	tagged(&y, 'C', "SELECT 1");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "2DCZ", "the added ParseComplete is dropped", bw);
	ok(ag_pgs_idle(c.s), "idle after ReadyForQuery");

	/* --- Describe(S, s1) and Close(S, s1): answered in order */
	x.n = 0;
	named(&x, 'D', 'S', "s1");
	named(&x, 'C', 'S', "s1");
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PDS", "Describe(s1) -> Parse+Describe; Close kept here", bw);
	expect(&c.to_client, "", "CloseComplete waits for the server's answers", bw);
	y.n = 0;
	empty(&y, '1');
	tagged(&y, 't', "");
	tagged(&y, 'T', "");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "tT3Z", "CloseComplete after the description, before ReadyForQuery", bw);
	ok(ag_pgs_statements(c.s, NULL) == 0, "statement closed");

	/* --- unknown name: our error replaces the server's; skip to Sync */
	x.n = 0;
	bind(&x, "", "nope", NULL);
	execute(&x);
	parse(&x, "s2", "SELECT 2", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PS", "unknown Bind -> a failing Parse; the rest dropped", bw);
	y.n = 0;
	error(&y, "42601");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "EZ", "one error, then ReadyForQuery", bw);
	ok(strcmp(first_code(&c.to_client), "26000") == 0, "error is 26000 (got %s)", first_code(&c.to_client));
	ok(ag_pgs_statements(c.s, NULL) == 0, "the dropped Parse made nothing");

	/* --- duplicate name: 42P05 */
	x.n = 0;
	parse(&x, "a", "SELECT 1", 0);
	parse(&x, "a", "SELECT 2", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PPS", "second Parse(a) -> failing Parse", bw);
	y.n = 0;
	empty(&y, '1');
	error(&y, "42601");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "1EZ", "ParseComplete, then the duplicate's error", bw);
	ok(strcmp(first_code(&c.to_client), "42P05") == 0, "error is 42P05 (got %s)", first_code(&c.to_client));
	ok(ag_pgs_statements(c.s, NULL) == 1, "the first one is kept");

	/* --- a server error mid-pipeline undoes what followed it */
	x.n = 0;
	parse(&x, "bad", "SELEC 1", 0);
	parse(&x, "b", "SELECT 1", 0);
	named(&x, 'C', 'S', "a");
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PPS", "two Parses and a Sync go; Close stays", bw);
	ok(ag_pgs_statements(c.s, NULL) == 2, "bad and b pending (a closed)");
	y.n = 0;
	error(&y, "42601");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "EZ", "only the first error; no CloseComplete", bw);
	ok(ag_pgs_statements(c.s, NULL) == 1, "bad and b undone, a back (got %d)",
	   ag_pgs_statements(c.s, NULL));
	x.n = 0;
	bind(&x, "", "a", NULL);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PBS", "a is usable again", bw);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '2');
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "2Z", "its Bind answered", bw);

	/* --- error reported before the client's Sync: the rest is dropped */
	x.n = 0;
	bind(&x, "", "a", NULL);
	execute(&x);
	empty(&x, 'H');
	from_client(&c, &x);
	y.n = 0;
	empty(&y, '1');
	error(&y, "22012");
	from_server(&c, &y);
	expect(&c.to_client, "E", "server error passes", bw);
	x.n = 0;
	parse(&x, "late", "SELECT 1", 0);
	bind(&x, "", "a", NULL);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "S", "messages after the error dropped until Sync", bw);
	ok(ag_pgs_statements(c.s, NULL) == 1, "late was not kept");
	y.n = 0;
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "Z", "ReadyForQuery", bw);

	/* --- DISCARD ALL clears the table; statements made after it stay */
	x.n = 0;
	tagged(&x, 'Q', "DISCARD ALL");
	parse(&x, "after", "SELECT 1", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "Q", "the Parse after DISCARD ALL waits for its answer", bw);
	y.n = 0;
	tagged(&y, 'C', "DISCARD ALL");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "CZ", "DISCARD ALL answered", bw);
	expect(&c.to_server, "PS", "then the Parse goes", bw);
	ok(ag_pgs_statements(c.s, NULL) == 1, "only 'after' left (got %d)", ag_pgs_statements(c.s, NULL));
	y.n = 0;
	empty(&y, '1');
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "1Z", "answered", bw);

	/* --- the unnamed statement replaced by ours is not silently reused */
	x.n = 0;
	parse(&x, "", "SELECT 'mine'", 0);
	bind(&x, "", "after", NULL);
	bind(&x, "", "", NULL);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PPBPS", "unnamed Bind after ours -> failing Parse", bw);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '1');
	empty(&y, '2');
	error(&y, "42601");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "12EZ", "26000 for the unnamed statement", bw);
	ok(strcmp(first_code(&c.to_client), "26000") == 0, "26000 (got %s)", first_code(&c.to_client));

	/* --- unnamed statements pass unchanged */
	x.n = 0;
	parse(&x, "", "SELECT 1", 0);
	bind(&x, "", "", NULL);
	named(&x, 'D', 'P', "");
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	ok(c.to_server.len == x.n && memcmp(c.to_server.data + c.to_server.off, x.b, x.n) == 0,
	   "unnamed extended query passes byte for byte%s", bw ? " (bytewise)" : "");
	y.n = 0;
	empty(&y, '1');
	empty(&y, '2');
	tagged(&y, 'T', "");
	tagged(&y, 'D', "");
	tagged(&y, 'N', "notice");
	tagged(&y, 'C', "SELECT 1");
	ready(&y, 'T');
	from_server(&c, &y);
	expect(&c.to_client, "12TDNCZ", "answers pass", bw);
	ok(!ag_pgs_idle(c.s), "in a transaction: not idle");
	conn_close(&c);
}

/* A server error at a Bind (not at a Parse) undoes the Parse after it. */
static void
error_at_bind(int bw)
{
	conn		c;
	m			x;
	m			y;

	conn_open(&c, bw);
	x.n = 0;
	parse(&x, "add", "SELECT 1", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	y.n = 0;
	empty(&y, '1');
	ready(&y, 'I');
	from_server(&c, &y);
	x.n = 0;
	bind(&x, "", "add", NULL);
	named(&x, 'D', 'P', "");
	execute(&x);
	parse(&x, "div", "SELECT 1/$1", 0);
	bind(&x, "", "div", NULL);
	named(&x, 'D', 'P', "");
	execute(&x);
	parse(&x, "after", "SELECT 1", 0);
	bind(&x, "", "add", NULL);
	named(&x, 'D', 'P', "");
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PBDEPPBDEPPBDES", "pipeline sent", bw);
	ok(ag_pgs_statements(c.s, NULL) == 3, "three kept for now");
	y.n = 0;
	empty(&y, '1');
	empty(&y, '2');
	tagged(&y, 'T', "");
	tagged(&y, 'D', "");
	tagged(&y, 'C', "SELECT 1");
	empty(&y, '1');
	empty(&y, '1');
	error(&y, "22012");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "2TDC1EZ", "answers up to the error", bw);
	ok(ag_pgs_statements(c.s, NULL) == 2, "after undone (got %d)", ag_pgs_statements(c.s, NULL));
	conn_close(&c);
}

/*
 * A later batch that reads the table waits until the server has answered
 * the earlier one: there the Parse of "late" is undone by an error, so a
 * second batch's Parse("late") must find the name free.
 */
static void
batches(int bw)
{
	conn		c;
	m			x;
	m			y;

	conn_open(&c, bw);
	x.n = 0;
	parse(&x, "div", "SELECT 1/$1", 0);
	bind(&x, "", "div", NULL);
	execute(&x);
	parse(&x, "late", "SELECT 1", 0);
	empty(&x, 'S');
	parse(&x, "late", "SELECT 2", 0);
	bind(&x, "", "late", NULL);
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PPBEPS", "first batch sent; the second waits", bw);
	ok(ag_pgs_client_stalled(c.s), "stalled");
	y.n = 0;
	empty(&y, '1');
	empty(&y, '1');
	error(&y, "22012");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "1EZ", "first batch answered", bw);
	expect(&c.to_server, "PPBES", "then the second batch goes, late made anew", bw);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '1');
	empty(&y, '2');
	tagged(&y, 'C', "SELECT 1");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "12CZ", "second batch answered", bw);
	ok(ag_pgs_idle(c.s), "idle");

	/* a pipelined DISCARD ALL is waited for too */
	x.n = 0;
	tagged(&x, 'Q', "discard all");
	parse(&x, "late", "SELECT 3", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "Q", "Parse waits for DISCARD ALL's answer", bw);
	y.n = 0;
	tagged(&y, 'C', "DISCARD ALL");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_server, "PS", "then the name is free", bw);
	conn_close(&c);
}

/* SQL DEALLOCATE of a kept statement is answered by the proxy. */
static void
deallocate(int bw)
{
	conn		c;
	m			x;
	m			y;

	conn_open(&c, bw);
	x.n = 0;
	parse(&x, "_pg3_0", "SELECT 1", 0);
	parse(&x, "Mixed", "SELECT 2", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '1');
	ready(&y, 'I');
	from_server(&c, &y);
	x.n = 0;
	tagged(&x, 'Q', "DEALLOCATE _pg3_0");
	from_client(&c, &x);
	expect(&c.to_server, "", "DEALLOCATE of a kept name: nothing to the server", bw);
	expect(&c.to_client, "CZ", "CommandComplete + ReadyForQuery from the proxy", bw);
	ok(ag_pgs_statements(c.s, NULL) == 1, "one left");
	x.n = 0;
	tagged(&x, 'Q', " deallocate PREPARE \"Mixed\" ; ");
	from_client(&c, &x);
	expect(&c.to_client, "CZ", "quoted name, PREPARE, semicolon", bw);
	ok(ag_pgs_statements(c.s, NULL) == 0, "none left");
	/* the same through the extended protocol, as psycopg sends it */
	x.n = 0;
	parse(&x, "s9", "SELECT 9", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	y.n = 0;
	empty(&y, '1');
	ready(&y, 'T');
	from_server(&c, &y);
	x.n = 0;
	parse(&x, "", "DEALLOCATE s9", 0);
	bind(&x, "", "", NULL);
	named(&x, 'D', 'P', "");
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "S", "extended DEALLOCATE of a kept name: only the Sync goes", bw);
	expect(&c.to_client, "12nC", "ParseComplete, BindComplete, NoData, CommandComplete from the proxy", bw);
	ok(ag_pgs_statements(c.s, NULL) == 0, "s9 gone");
	y.n = 0;
	ready(&y, 'T');
	from_server(&c, &y);
	expect(&c.to_client, "Z", "the server's ReadyForQuery", bw);
	x.n = 0;
	bind(&x, "", "", NULL);
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PS", "running it again: s9 no longer exists (failing Parse)", bw);
	expect(&c.to_client, "2", "BindComplete at once", bw);
	y.n = 0;
	error(&y, "42601");
	ready(&y, 'E');
	from_server(&c, &y);
	expect(&c.to_client, "EZ", "then 26000", bw);
	ok(strcmp(first_code(&c.to_client), "26000") == 0, "26000 (got %s)", first_code(&c.to_client));
	x.n = 0;
	tagged(&x, 'Q', "ROLLBACK");
	from_client(&c, &x);
	y.n = 0;
	tagged(&y, 'C', "ROLLBACK");
	ready(&y, 'I');
	from_server(&c, &y);
	{
		const char *texts[3] = {"DEALLOCATE q", "DEALLOCATE ALL", "DEALLOCATE _pg3_0; SELECT 1"};
		int			i;

		for (i = 0; i < 3; i++)
		{
			x.n = 0;
			tagged(&x, 'Q', texts[i]);
			from_client(&c, &x);
			expect(&c.to_server, "Q", texts[i], bw);
			y.n = 0;
			error(&y, "26000");
			ready(&y, 'I');
			from_server(&c, &y);
		}
	}
	conn_close(&c);
}

static void
limits(void)
{
	conn		c;
	m			x;
	m			y;
	char		name[16];
	int			i;
	ag_pgs_limits small = {1 << 20, 3, 1 << 16};
	ag_pgs_limits saved = lim;
	const char *sqlstate;
	const char *msgtext;
	const char *detail;
	const char *hint;

	lim = small;
	conn_open(&c, 0);
	x.n = 0;
	for (i = 0; i < 4; i++)
	{
		snprintf(name, sizeof(name), "p%d", i);
		parse(&x, name, "SELECT 1", 0);
	}
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PPPPS", "fourth Parse over the limit -> failing Parse", 0);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '1');
	empty(&y, '1');
	error(&y, "42601");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "111EZ", "three kept, then 54000", 0);
	ok(strcmp(first_code(&c.to_client), "54000") == 0, "54000 (got %s)", first_code(&c.to_client));
	ok(ag_pgs_statements(c.s, NULL) == 3, "three statements");
	conn_close(&c);
	lim = saved;

	/* FunctionCall and bad lengths are refused before any byte passes */
	conn_open(&c, 0);
	x.n = 0;
	tagged(&x, 'F', "x");
	ok(from_client(&c, &x) == AG_PGS_FATAL && c.to_server.len == 0, "FunctionCall refused");
	ag_pgs_fatal(c.s, &sqlstate, &msgtext, &detail, &hint);
	ok(strcmp(sqlstate, "42501") == 0, "as 42501");
	conn_close(&c);
	conn_open(&c, 1);
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	tagged(&x, 'F', "x");
	ok(from_client(&c, &x) == AG_PGS_FATAL && c.to_server.len == 14,
	   "FunctionCall split byte by byte: refused, only the Query before it passed");
	conn_close(&c);
	conn_open(&c, 0);
	x.n = 0;
	add(&x, "Q", 1);
	add32(&x, 2);
	ok(from_client(&c, &x) == AG_PGS_FATAL, "length 2 refused");
	conn_close(&c);

	/* PgBouncer asking for a password */
	{
		ag_pgstream *s = ag_pgs_new(&lim);
		ag_buf		out = {0};


		y.n = 0;
		x.n = 0;
		add32(&x, 3);
		msg(&y, 'R', &x);
		ok(ag_pgs_from_server(s, y.b, y.n, &out, &out) == AG_PGS_AUTH_REQUEST && out.len == 0,
		   "password request stopped before any byte passes");
		ok(ag_pgs_auth_request(s) == 3, "request code kept");
		ag_pgs_free(s);
		ag_buf_free(&out);
	}
}

static void
param_status(m *x, const char *name, const char *value)
{
	m			b = {.n = 0};

	adds(&b, name);
	adds(&b, value);
	msg(x, 'S', &b);
}

/*
 * The session stamp: a ParameterStatus for application_name must end with
 * the client's own stamp (alone, or after a space); another stamp ends the
 * stream with 42501 before the message reaches the client.
 */
static void
stamp(int bw)
{
	static const char *const keep[] = {
		"ag1.s1.mac1", "psql ag1.s1.mac1", "PostgreSQL JDBC Driver ag1.s1.mac1", NULL
	};
	static const char *const foreign[] = {
		"ag1.s2.mac2", "x ag1.s2.mac2", "xag1.s1.mac1", "", "plain", NULL
	};
	conn		c;
	m			x;
	m			y;
	int			i;
	const char *sqlstate;
	const char *msgtext;
	const char *detail;
	const char *hint;

	for (i = 0; keep[i]; i++)
	{
		conn_open(&c, bw);
		ok(ag_pgs_set_stamp(c.s, "ag1.s1.mac1") == 0, "stamp set");
		x.n = 0;
		tagged(&x, 'Q', "SET application_name = 'x'");
		from_client(&c, &x);
		y.n = 0;
		tagged(&y, 'C', "SET");
		param_status(&y, "application_name", keep[i]);
		param_status(&y, "TimeZone", "UTC");
		ready(&y, 'I');
		ok(from_server(&c, &y) == AG_PGS_OK, "\"%s\" keeps the stamp%s", keep[i], bw ? " (bytewise)" : "");
		expect(&c.to_client, "CSSZ", "all of it passes", bw);
		conn_close(&c);
	}
	for (i = 0; foreign[i]; i++)
	{
		conn_open(&c, bw);
		ag_pgs_set_stamp(c.s, "ag1.s1.mac1");
		x.n = 0;
		tagged(&x, 'Q', "SET application_name = 'x'");
		from_client(&c, &x);
		y.n = 0;
		tagged(&y, 'C', "SET");
		param_status(&y, "application_name", foreign[i]);
		ready(&y, 'I');
		ok(from_server(&c, &y) == AG_PGS_FATAL, "\"%s\" ends the stream%s", foreign[i], bw ? " (bytewise)" : "");
		ag_pgs_fatal(c.s, &sqlstate, &msgtext, &detail, &hint);
		ok(strcmp(sqlstate, "42501") == 0, "as 42501");
		expect(&c.to_client, "C", "the ParameterStatus does not pass", bw);
		conn_close(&c);
	}
	/* no stamp: nothing is checked; the ready count */
	conn_open(&c, bw);
	ok(ag_pgs_ready_seen(c.s), "the login's ReadyForQuery was seen");
	y.n = 0;
	param_status(&y, "application_name", "anything");
	ok(from_server(&c, &y) == AG_PGS_OK, "no stamp: not checked");
	conn_close(&c);
}

/* ------------------------------------------------------------ shared pool */

#define ROLE		"agent_alice"
#define STAMP		"ag1.s1.mac1"

/* A shared-pool connection: the carrier set, then the login (R S K Z). */
static void
shared_open(conn *c, int bw, const char *app)
{
	m			login = {.n = 0};
	m			b = {.n = 0};

	memset(c, 0, sizeof(*c));
	c->s = ag_pgs_new(&lim);
	c->bytewise = bw;
	ok(ag_pgs_set_shared(c->s, ROLE, STAMP, app) == 0, "shared mode set");
	add32(&b, 0);
	msg(&login, 'R', &b);
	param_status(&login, "application_name", AG_PGPROTO_POOL_APPNAME);
	b.n = 0;
	add32(&b, 0x01020304);
	add32(&b, 0x05060708);
	msg(&login, 'K', &b);
	ready(&login, 'I');
	from_server(c, &login);
}

/* The carrier as the extension expects it, byte for byte. */
static void
carrier(m *x)
{
	m			b = {.n = 0};

	parse(x, "", AG_PGS_CARRIER_QUERY, 0);
	adds(&b, "");
	adds(&b, "");
	add16(&b, 0);
	add16(&b, 2);
	add32(&b, (uint32_t) strlen(ROLE));
	add(&b, ROLE, strlen(ROLE));
	add32(&b, (uint32_t) strlen(STAMP));
	add(&b, STAMP, strlen(STAMP));
	add16(&b, 0);
	msg(x, 'B', &b);
	execute(x);
}

/* to_server is the carrier and then exactly the bytes of after. */
static int
carrier_then(const ag_buf *q, const m *after)
{
	m			want = {.n = 0};

	carrier(&want);
	add(&want, after->b, after->n);
	return q->len == want.n && memcmp(q->data + q->off, want.b, want.n) == 0;
}

/* The server's answers to the carrier. */
static void
carrier_ok(m *y)
{
	empty(y, '1');
	empty(y, '2');
	tagged(y, 'C', "CALL");
}

/* The value of the first ParameterStatus in q ("" if none). */
static const char *
first_param_value(const ag_buf *q)
{
	size_t		pos = 0;

	while (pos + 5 <= q->len)
	{
		const uint8_t *p = q->data + q->off + pos;

		if (p[0] == 'S')
			return (const char *) p + 5 + strlen((const char *) p + 5) + 1;
		pos += 1 + ag_pg_get32(p + 1);
	}
	return "";
}

static void
query_answer(m *y, char status)
{
	m			b = {.n = 0};

	add16(&b, 0);
	msg(y, 'T', &b);
	tagged(y, 'C', "SELECT 0");
	ready(y, status);
}

/* Parse(""), Bind, Execute, Sync of q: a whole unnamed group. */
static void
unnamed_group(m *x, const char *q)
{
	parse(x, "", q, 0);
	bind(x, "", "", NULL);
	execute(x);
	empty(x, 'S');
}

/* Bind(name), Execute, Sync. */
static void
run_bound(m *x, const char *name)
{
	bind(x, "", name, NULL);
	execute(x);
	empty(x, 'S');
}

/* The server's answers to such a group. */
static void
group_answer(m *y)
{
	empty(y, '1');
	empty(y, '2');
	tagged(y, 'C', "SELECT 1");
	ready(y, 'I');
}

static void
shared(int bw)
{
	conn		c;
	m			x;
	m			y;
	uint8_t		key[8];
	static const uint8_t want_key[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	const char *sqlstate;
	const char *msgtext;
	const char *detail;
	const char *hint;

	/* --- login: the client's own application_name, PgBouncer's key kept */
	shared_open(&c, bw, "psql");
	expect(&c.to_client, "RSKZ", "shared login passes", bw);
	ok(strcmp(first_param_value(&c.to_client), "psql") == 0,
	   "login's application_name is the client's%s: %s", bw ? " (bytewise)" : "",
	   first_param_value(&c.to_client));
	ok(ag_pgs_cancel_key(c.s, key) == 1 && memcmp(key, want_key, 8) == 0, "cancel key kept");
	ok(!ag_pgs_outstanding(c.s), "nothing outstanding after the login");

	/* --- a Query at idle: carrier first, its answers swallowed */
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	ok(from_client(&c, &x) == AG_PGS_OK, "query accepted");
	ok(carrier_then(&c.to_server, &x), "carrier, then the Query unchanged%s", bw ? " (bytewise)" : "");
	ok(ag_pgs_outstanding(c.s), "the Query is outstanding");
	y.n = 0;
	carrier_ok(&y);
	query_answer(&y, 'I');
	ok(from_server(&c, &y) == AG_PGS_OK, "answers accepted");
	expect(&c.to_client, "TCZ", "carrier's 1, 2, C swallowed", bw);
	ok(!ag_pgs_outstanding(c.s) && ag_pgs_idle(c.s), "idle again");

	/* --- the next window gets its own carrier */
	from_client(&c, &x);
	ok(carrier_then(&c.to_server, &x), "a carrier per window");
	y.n = 0;
	carrier_ok(&y);
	tagged(&y, 'C', "BEGIN");
	ready(&y, 'T');
	from_server(&c, &y);
	expect(&c.to_client, "CZ", "BEGIN answered", bw);

	/* --- inside a transaction block, and in a failed one: none */
	from_client(&c, &x);
	expect(&c.to_server, "Q", "no carrier while 'T'", bw);
	y.n = 0;
	error(&y, "22012");
	ready(&y, 'E');
	from_server(&c, &y);
	from_client(&c, &x);
	expect(&c.to_server, "Q", "no carrier while 'E'", bw);
	y.n = 0;
	tagged(&y, 'C', "ROLLBACK");
	ready(&y, 'I');
	from_server(&c, &y);
	from_client(&c, &x);
	ok(carrier_then(&c.to_server, &x), "after 'I' again: a carrier");
	y.n = 0;
	carrier_ok(&y);
	query_answer(&y, 'I');
	from_server(&c, &y);

	/* --- two Queries at once: the second window waits for the first's answer */
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	tagged(&x, 'Q', "SELECT 2");
	from_client(&c, &x);
	expect(&c.to_server, "PBEQ", "only the first Query goes, with its carrier", bw);
	ok(c.held.len > 0 || bw, "the second is held");
	y.n = 0;
	carrier_ok(&y);
	from_server(&c, &y);
	expect(&c.to_server, "", "still held after the carrier's answer", bw);
	expect(&c.to_client, "", "nothing for the client yet", bw);
	y.n = 0;
	query_answer(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "TCZ", "the first answered", bw);
	expect(&c.to_server, "PBEQ", "then the second, idle again: its own carrier", bw);
	y.n = 0;
	carrier_ok(&y);
	query_answer(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "TCZ", "the second answered", bw);
	ok(ag_pgs_idle(c.s), "idle");

	/* --- BEGIN pipelined with the next Query: no carrier for it after 'T' */
	x.n = 0;
	tagged(&x, 'Q', "BEGIN");
	tagged(&x, 'Q', "SELECT 2");
	from_client(&c, &x);
	expect(&c.to_server, "PBEQ", "BEGIN with its carrier", bw);
	y.n = 0;
	carrier_ok(&y);
	tagged(&y, 'C', "BEGIN");
	ready(&y, 'T');
	from_server(&c, &y);
	expect(&c.to_server, "Q", "the held Query inside the block: none", bw);
	y.n = 0;
	tagged(&y, 'C', "COMMIT");
	ready(&y, 'I');
	from_server(&c, &y);
	ok(ag_pgs_idle(c.s), "idle");

	/* --- an extended group: one carrier, not again before its Sync */
	x.n = 0;
	parse(&x, "", "SELECT $1::int", 1);
	from_client(&c, &x);
	ok(carrier_then(&c.to_server, &x), "carrier before the group's Parse");
	x.n = 0;
	bind(&x, "", "", "1");
	execute(&x);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "BES", "the rest of the group: none", bw);
	y.n = 0;
	carrier_ok(&y);
	group_answer(&y);
	from_server(&c, &y);
	expect(&c.to_client, "12CZ", "the group's answers only", bw);

	/* --- pipelined groups: each waits for the one before, then its carrier */
	x.n = 0;
	unnamed_group(&x, "SELECT 1");
	unnamed_group(&x, "SELECT 2");
	from_client(&c, &x);
	expect(&c.to_server, "PBEPBES", "the first group with its carrier; the second held", bw);
	y.n = 0;
	carrier_ok(&y);
	group_answer(&y);
	from_server(&c, &y);
	expect(&c.to_client, "12CZ", "the first answered", bw);
	expect(&c.to_server, "PBEPBES", "then the second with its own carrier", bw);
	y.n = 0;
	carrier_ok(&y);
	group_answer(&y);
	from_server(&c, &y);
	expect(&c.to_client, "12CZ", "the second answered", bw);

	/* --- the carrier holds the unnamed statement: binding it is refused
	 * (the client's own unnamed Parse was the last before this window) */
	x.n = 0;
	run_bound(&x, "");
	from_client(&c, &x);
	expect(&c.to_server, "PBEPS", "Bind(\"\") at a window start: the proxy's refusal", bw);
	y.n = 0;
	carrier_ok(&y);
	error(&y, "42601");
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "EZ", "an error and ReadyForQuery", bw);
	ok(strcmp(first_code(&c.to_client), "26000") == 0, "26000, not the carrier's CALL bound: %s",
	   first_code(&c.to_client));

	/* --- a named statement: stored, replayed behind the window's carrier */
	x.n = 0;
	parse(&x, "s1", "SELECT 1", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PBEPS", "named Parse: carrier, Parse(\"\"), Sync", bw);
	y.n = 0;
	carrier_ok(&y);
	empty(&y, '1');
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "1Z", "ParseComplete reaches the client", bw);
	x.n = 0;
	run_bound(&x, "s1");
	from_client(&c, &x);
	expect(&c.to_server, "PBEPBES", "Bind(s1): carrier, replayed Parse, Bind", bw);
	y.n = 0;
	carrier_ok(&y);
	group_answer(&y);
	from_server(&c, &y);
	expect(&c.to_client, "2CZ", "replayed ParseComplete and the carrier's dropped", bw);
	x.n = 0;
	named(&x, 'D', 'S', "s1");
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "PBEPDS", "Describe(s1): carrier, replayed Parse, Describe", bw);
	y.n = 0;
	carrier_ok(&y);
	empty(&y, '1');
	x.n = 0;
	add16(&x, 0);
	msg(&y, 't', &x);
	empty(&y, 'n');
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "tnZ", "Describe answered", bw);

	/* --- answered by the proxy alone: no carrier, nothing to the server */
	x.n = 0;
	tagged(&x, 'Q', "DEALLOCATE s1");
	from_client(&c, &x);
	expect(&c.to_server, "", "DEALLOCATE of a kept name: no carrier", bw);
	expect(&c.to_client, "CZ", "answered here", bw);
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	from_client(&c, &x);
	ok(carrier_then(&c.to_server, &x), "the next Query still gets one");
	y.n = 0;
	carrier_ok(&y);
	query_answer(&y, 'I');
	from_server(&c, &y);

	/* --- a Query too long to gather is streamed behind the carrier */
	{
		char		big[3000];

		memset(big, 'x', sizeof(big) - 1);
		memcpy(big, "SELECT '", 8);
		big[sizeof(big) - 2] = '\'';
		big[sizeof(big) - 1] = '\0';
		x.n = 0;
		tagged(&x, 'Q', big);
		from_client(&c, &x);
		ok(carrier_then(&c.to_server, &x), "a long Query: carrier, then all of it%s",
		   bw ? " (bytewise)" : "");
		y.n = 0;
		carrier_ok(&y);
		query_answer(&y, 'I');
		from_server(&c, &y);
		expect(&c.to_client, "TCZ", "answered", bw);
	}

	/* --- application_name: the pool's value shown as the client's */
	x.n = 0;
	tagged(&x, 'Q', "RESET ALL");
	from_client(&c, &x);
	y.n = 0;
	carrier_ok(&y);
	tagged(&y, 'C', "RESET");
	param_status(&y, "application_name", AG_PGPROTO_POOL_APPNAME);
	ready(&y, 'I');
	ok(from_server(&c, &y) == AG_PGS_OK, "no stamp check in shared mode");
	expect(&c.to_client, "CSZ", "RESET answered", bw);
	ok(strcmp(first_param_value(&c.to_client), "psql") == 0, "rewritten to the client's");
	x.n = 0;
	tagged(&x, 'Q', "SET application_name = 'mine'");
	from_client(&c, &x);
	y.n = 0;
	carrier_ok(&y);
	tagged(&y, 'C', "SET");
	param_status(&y, "application_name", "mine");
	ready(&y, 'I');
	from_server(&c, &y);
	ok(strcmp(first_param_value(&c.to_client), "mine") == 0, "the client's own SET passes");
	conn_close(&c);

	/* --- the carrier refused before a Query: the proxy's Sync ends it */
	shared_open(&c, bw, NULL);
	expect(&c.to_client, "RSKZ", "login", bw);
	ok(strcmp(first_param_value(&c.to_client), "") == 0, "no application_name: shown empty");
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	tagged(&x, 'Q', "SELECT 2");
	from_client(&c, &x);
	y.n = 0;
	error(&y, "42501");
	ok(from_server(&c, &y) == AG_PGS_OK, "carrier error accepted");
	expect(&c.to_client, "E", "the error goes to the client", bw);
	ok(strcmp(first_code(&c.to_client), "42501") == 0, "as the server sent it");
	expect(&c.to_server, "S", "the proxy's Sync; the second Query still held", bw);
	y.n = 0;
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "Z", "the Sync's ReadyForQuery ends the first Query", bw);
	expect(&c.to_server, "PBEQ", "the second Query with a carrier of its own", bw);
	y.n = 0;
	carrier_ok(&y);
	query_answer(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "TCZ", "and answered", bw);
	ok(ag_pgs_idle(c.s), "idle after the refusal");
	/* refused after its ParseComplete: the same */
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	from_client(&c, &x);
	ok(carrier_then(&c.to_server, &x), "a new carrier");
	y.n = 0;
	empty(&y, '1');
	error(&y, "42501");
	from_server(&c, &y);
	expect(&c.to_client, "E", "error after ParseComplete", bw);
	expect(&c.to_server, "S", "the proxy's Sync", bw);
	y.n = 0;
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "Z", "ends the Query", bw);

	/* --- refused while the Query is still being streamed: Sync after it */
	{
		char		big[3000];
		size_t		part;

		memset(big, 'y', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		x.n = 0;
		tagged(&x, 'Q', big);
		part = x.n / 2;
		ag_buf_consume(&c.to_server, c.to_server.len);
		ag_buf_consume(&c.to_client, c.to_client.len);
		feed_client(&c, x.b, part);
		y.n = 0;
		error(&y, "42501");
		ok(ag_pgs_from_server(c.s, y.b, y.n, &c.to_client, &c.to_server) == AG_PGS_OK,
		   "carrier error mid-Query");
		feed_client(&c, x.b + part, x.n - part);
		y.n = 0;
		carrier(&y);
		add(&y, x.b, x.n);
		empty(&y, 'S');
		ok(c.to_server.len == y.n && memcmp(c.to_server.data + c.to_server.off, y.b, y.n) == 0,
		   "carrier, the whole Query, then the proxy's Sync%s", bw ? " (bytewise)" : "");
		y.n = 0;
		ready(&y, 'I');
		from_server(&c, &y);
		expect(&c.to_client, "Z", "ends the Query", bw);
	}

	/* --- refused before an extended group: its own Sync ends it */
	x.n = 0;
	parse(&x, "", "SELECT 1", 0);
	bind(&x, "", "", NULL);
	execute(&x);
	from_client(&c, &x);
	y.n = 0;
	error(&y, "42501");
	from_server(&c, &y);
	expect(&c.to_client, "E", "the error", bw);
	expect(&c.to_server, "", "no Sync of the proxy's", bw);
	x.n = 0;
	parse(&x, "", "SELECT 2", 0);
	empty(&x, 'S');
	from_client(&c, &x);
	expect(&c.to_server, "S", "skipped to the client's Sync", bw);
	y.n = 0;
	ready(&y, 'I');
	from_server(&c, &y);
	expect(&c.to_client, "Z", "its ReadyForQuery", bw);
	ok(ag_pgs_idle(c.s), "idle");

	/* --- the carrier answered with something else: out of step */
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	from_client(&c, &x);
	y.n = 0;
	empty(&y, '1');
	empty(&y, '2');
	query_answer(&y, 'I');
	ok(from_server(&c, &y) == AG_PGS_FATAL, "a RowDescription for the carrier ends the stream");
	ag_pgs_fatal(c.s, &sqlstate, &msgtext, &detail, &hint);
	ok(strcmp(sqlstate, "08P01") == 0, "as 08P01");
	conn_close(&c);

	/* --- a Query sent before the login's ReadyForQuery still gets one */
	memset(&c, 0, sizeof(c));
	c.s = ag_pgs_new(&lim);
	c.bytewise = bw;
	ag_pgs_set_shared(c.s, ROLE, STAMP, "app");
	x.n = 0;
	tagged(&x, 'Q', "SELECT 1");
	from_client(&c, &x);
	ok(carrier_then(&c.to_server, &x), "early Query: carrier");
	conn_close(&c);

	/* --- values that do not fit */
	{
		ag_pgstream *s2 = ag_pgs_new(&lim);
		char		longrole[80];

		memset(longrole, 'r', sizeof(longrole) - 1);
		longrole[sizeof(longrole) - 1] = '\0';
		ok(ag_pgs_set_shared(s2, longrole, STAMP, NULL) < 0, "role too long refused");
		ok(ag_pgs_set_shared(s2, ROLE, "", NULL) < 0, "empty stamp refused");
		ok(ag_pgs_set_shared(s2, "", STAMP, NULL) < 0, "empty role refused");
		ag_pgs_free(s2);
	}
}

int
main(void)
{
	stamp(0);
	stamp(1);
	shared(0);
	shared(1);
	run(0);
	run(1);
	error_at_bind(0);
	error_at_bind(1);
	batches(0);
	batches(1);
	deallocate(0);
	deallocate(1);
	limits();
	return ag_test_report();
}
