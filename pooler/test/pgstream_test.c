/*
 * pgstream_test.c
 *	  Unit tests of the protocol state machine (pgstream.c): named
 *	  statements kept by the proxy, answers in order, errors mid-pipeline,
 *	  DISCARD ALL, limits, framing refusals, and byte-at-a-time input.
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
	ag_pgs_from_server(c->s, login.b, login.n, &c->to_client);
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
		st = ag_pgs_from_server(c->s, x->b + i, c->bytewise ? 1 : x->n, &c->to_client);
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
		ok(ag_pgs_from_server(s, y.b, y.n, &out) == AG_PGS_AUTH_REQUEST && out.len == 0,
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

int
main(void)
{
	stamp(0);
	stamp(1);
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
