/*
 * pgproto_test.c
 *	  Unit tests for the startup packet parser/filter/builder, ErrorResponse
 *	  building, client message framing checks and the relay's stream
 *	  scanners.
 */
#include "ag_pgproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ag_test.h"

/* Build a startup packet from NULL-terminated name/value pairs. */
static size_t
mkpkt(uint8_t *buf, uint32_t code, const char *const *kv)
{
	size_t		pos = 8;

	for (; kv && kv[0]; kv += 2)
	{
		size_t		n = strlen(kv[0]) + 1;
		size_t		v = strlen(kv[1]) + 1;

		memcpy(buf + pos, kv[0], n);
		memcpy(buf + pos + n, kv[1], v);
		pos += n + v;
	}
	buf[pos++] = 0;
	ag_pg_put32(buf, (uint32_t) pos);
	ag_pg_put32(buf + 4, code);
	return pos;
}

static ag_pg_startup st;

static int
parse_kv(const char *const *kv, char *err)
{
	uint8_t		buf[4096];
	size_t		n = mkpkt(buf, AG_PG_PROTO_V3, kv);

	return ag_pgproto_parse_startup(buf, n, &st, err);
}

static void
test_parse(void)
{
	uint8_t		buf[AG_PGPROTO_MAX_STARTUP + 16];
	char		err[AG_PGPROTO_ERRLEN];
	const char *const ok[] = {"user", "alice", "database", "app", "application_name", "psql", NULL};
	size_t		n;

	CHECK(parse_kv(ok, err) == 0, "plain startup parses");
	CHECK(st.kind == AG_PG_STARTUP && st.major == 3 && st.minor == 0, "kind and version");
	CHECK(st.nparams == 3 && strcmp(st.params[1].value, "app") == 0, "params");

	/* SSLRequest, GSSENCRequest, CancelRequest */
	ag_pg_put32(buf, 8);
	ag_pg_put32(buf + 4, AG_PG_SSL_CODE);
	CHECK(ag_pgproto_parse_startup(buf, 8, &st, err) == 0 && st.kind == AG_PG_SSLREQUEST, "ssl request");
	ag_pg_put32(buf + 4, AG_PG_GSSENC_CODE);
	CHECK(ag_pgproto_parse_startup(buf, 8, &st, err) == 0 && st.kind == AG_PG_GSSENCREQUEST, "gssenc request");
	ag_pg_put32(buf, 16);
	ag_pg_put32(buf + 4, AG_PG_CANCEL_CODE);
	ag_pg_put32(buf + 8, 1234);
	ag_pg_put32(buf + 12, 0xdeadbeef);
	CHECK(ag_pgproto_parse_startup(buf, 16, &st, err) == 0 && st.kind == AG_PG_CANCELREQUEST &&
		  st.cancel_pid == 1234 && st.cancel_key == 0xdeadbeef, "cancel request");
	CHECK(ag_pgproto_parse_startup(buf, 12, &st, err) < 0, "cancel with wrong length");
	ag_pg_put32(buf, 12);
	CHECK(ag_pgproto_parse_startup(buf, 12, &st, err) < 0, "cancel request of 12 bytes");
	ag_pg_put32(buf, 9);
	ag_pg_put32(buf + 4, AG_PG_SSL_CODE);
	CHECK(ag_pgproto_parse_startup(buf, 9, &st, err) < 0, "ssl request of 9 bytes");

	/* lengths */
	n = mkpkt(buf, AG_PG_PROTO_V3, ok);
	CHECK(ag_pgproto_parse_startup(buf, n - 1, &st, err) < 0, "length field mismatch");
	CHECK(ag_pgproto_parse_startup(buf, 4, &st, err) < 0, "too short");
	CHECK(ag_pgproto_parse_startup(buf, 0, &st, err) < 0, "empty");
	memset(buf, 'a', sizeof(buf));
	ag_pg_put32(buf, AG_PGPROTO_MAX_STARTUP + 1);
	ag_pg_put32(buf + 4, AG_PG_PROTO_V3);
	CHECK(ag_pgproto_parse_startup(buf, AG_PGPROTO_MAX_STARTUP + 1, &st, err) < 0, "too long");

	/* protocol versions */
	n = mkpkt(buf, 2 << 16, ok);
	CHECK(ag_pgproto_parse_startup(buf, n, &st, err) < 0 && strstr(err, "2.0"), "protocol 2 refused");
	n = mkpkt(buf, (3 << 16) | 2, ok);
	CHECK(ag_pgproto_parse_startup(buf, n, &st, err) == 0 && st.minor == 2, "protocol 3.2 parsed");

	/* layout errors */
	n = mkpkt(buf, AG_PG_PROTO_V3, ok);
	buf[n - 1] = 'x';			/* no terminator */
	CHECK(ag_pgproto_parse_startup(buf, n, &st, err) < 0, "missing terminator");
	n = mkpkt(buf, AG_PG_PROTO_V3, ok);
	buf[n] = 0;					/* trailing byte after terminator */
	ag_pg_put32(buf, (uint32_t) n + 1);
	CHECK(ag_pgproto_parse_startup(buf, n + 1, &st, err) < 0, "bytes after terminator");
	{
		static const uint8_t name_only[] = {0, 0, 0, 13, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0};

		CHECK(ag_pgproto_parse_startup(name_only, sizeof(name_only), &st, err) < 0, "name without value");
	}
	{
		const char *const dup[] = {"user", "a", "USER", "b", NULL};

		CHECK(parse_kv(dup, err) < 0 && strstr(err, "duplicate"), "duplicate parameter");
	}
	{
		const char *const empty[] = {NULL};

		CHECK(parse_kv(empty, err) == 0 && st.nparams == 0, "no parameters parses");
	}
	{
		const char *kv[2 * (AG_PGPROTO_MAX_PARAMS + 1) + 1];
		char		names[AG_PGPROTO_MAX_PARAMS + 1][8];
		int			i;

		for (i = 0; i <= AG_PGPROTO_MAX_PARAMS; i++)
		{
			snprintf(names[i], sizeof(names[i]), "p%d", i);
			kv[2 * i] = names[i];
			kv[2 * i + 1] = "v";
		}
		kv[2 * i] = NULL;
		CHECK(parse_kv(kv, err) < 0, "too many parameters");
	}
}

static int
filter_kv(const char *const *kv, ag_pg_client_params *p, char *bad, char *err)
{
	char		e2[AG_PGPROTO_ERRLEN];

	if (parse_kv(kv, e2) < 0)
	{
		strcpy(err, e2);
		bad[0] = 0;
		return -2;
	}
	return ag_pgproto_filter_startup(&st, p, bad, err);
}

static void
test_filter(void)
{
	ag_pg_client_params p;
	char		bad[AG_PGPROTO_NAMELEN + 1];
	char		err[AG_PGPROTO_ERRLEN];

	{
		const char *const kv[] = {"user", "bob", "database", "db1", "client_encoding", "UTF8",
		"DateStyle", "ISO, MDY", "TimeZone", "UTC", "extra_float_digits", "3",
		"application_name", "psql", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == 0, "accepted parameters");
		CHECK(strcmp(p.database, "db1") == 0 && strcmp(p.user, "bob") == 0, "database and user");
		CHECK(strcmp(p.datestyle, "ISO, MDY") == 0 && strcmp(p.timezone, "UTC") == 0 &&
			  strcmp(p.client_encoding, "UTF8") == 0, "settings kept");
	}
	{
		const char *const kv[] = {"user", "bob", "options", "-c role=postgres", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "options") == 0, "options refused");
	}
	{
		const char *const kv[] = {"user", "bob", "replication", "database", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "replication") == 0, "replication refused");
	}
	{
		const char *const kv[] = {"user", "bob", "search_path", "evil", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "search_path") == 0, "unknown GUC refused");
	}
	{
		const char *const kv[] = {"user", "bob", "_pq_.foo", "1", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "_pq_.foo") == 0, "protocol option refused");
	}
	{
		const char *const kv[] = {"user", "bob", "bad\x01name", "1", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "bad?name") == 0, "bad name masked");
	}
	{
		const char *const kv[] = {"user", "bob", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == 0 && strcmp(p.database, "bob") == 0, "database defaults to user");
	}
	{
		const char *const kv[] = {"application_name", "x", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strstr(err, "database"), "no database, no user");
	}
	{
		const char *const kv[] = {"user", "bob", "TimeZone", "UTC\x01", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "TimeZone") == 0, "control char in setting");
	}
	{
		char		longv[200];
		const char *const kv[] = {"user", "bob", "DateStyle", longv, NULL};

		memset(longv, 'a', sizeof(longv) - 1);
		longv[sizeof(longv) - 1] = 0;
		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "DateStyle") == 0, "long setting refused");
	}
	{
		char		longv[80];
		const char *const kv[] = {"user", "bob", "database", longv, NULL};

		memset(longv, 'd', sizeof(longv) - 1);
		longv[sizeof(longv) - 1] = 0;
		CHECK(filter_kv(kv, &p, bad, err) == -1 && strcmp(bad, "database") == 0, "64-byte database refused");
	}
}

/*
 * A built packet parses as protocol 3.0 with exactly user, database db1,
 * application_name and TimeZone UTC.
 */
static int
built_has(const uint8_t *out, int n, const char *user, const char *app)
{
	ag_pg_startup *b;
	char		err[AG_PGPROTO_ERRLEN];
	int			i;
	int			seen = 0;

	if (n <= 0 || (b = malloc(sizeof(*b))) == NULL)
		return 0;
	if (ag_pgproto_parse_startup(out, (size_t) n, b, err) < 0 || b->major != 3 || b->minor != 0)
	{
		free(b);
		return 0;
	}
	for (i = 0; i < b->nparams; i++)
	{
		if (strcmp(b->params[i].name, "user") == 0)
			seen += strcmp(b->params[i].value, user) == 0;
		else if (strcmp(b->params[i].name, "database") == 0)
			seen += strcmp(b->params[i].value, "db1") == 0;
		else if (strcmp(b->params[i].name, "application_name") == 0)
			seen += strcmp(b->params[i].value, app) == 0;
		else if (strcmp(b->params[i].name, "TimeZone") == 0)
			seen += strcmp(b->params[i].value, "UTC") == 0;
		else
			seen -= 100;
	}
	i = b->nparams;
	free(b);
	return seen == 4 && i == 4;
}

static void
test_build(void)
{
	ag_pg_client_params p;
	char		bad[AG_PGPROTO_NAMELEN + 1];
	char		err[AG_PGPROTO_ERRLEN];
	char		app[128];
	uint8_t		out[1024];
	int			n;
	const char *stamp = "ag1.0123456789abcdef.0123456789abcdef";

	ag_pgproto_app_name("psql", stamp, app, sizeof(app));
	CHECK(strcmp(app, "psql ag1.0123456789abcdef.0123456789abcdef") == 0, "app name with prefix");
	ag_pgproto_app_name(NULL, stamp, app, sizeof(app));
	CHECK(strcmp(app, stamp) == 0, "app name without prefix");
	ag_pgproto_app_name("my app\x01\xc3\xa9 name-that-is-really-too-long", stamp, app, sizeof(app));
	CHECK(strcmp(app, "myappname-that-is-re ag1.0123456789abcdef.0123456789abcdef") == 0,
		  "app name sanitised and cut");
	ag_pgproto_app_name("   ", stamp, app, sizeof(app));
	CHECK(strcmp(app, stamp) == 0, "blank app name dropped");

	{
		const char *const kv[] = {"user", "mallory", "database", "db1", "TimeZone", "UTC",
		"application_name", "psql", "extra_float_digits", "3", NULL};

		CHECK(filter_kv(kv, &p, bad, err) == 0, "filter before build");
	}
	n = ag_pgproto_build_startup(&p, "agent_alice", stamp, out, sizeof(out));
	CHECK(n > 0, "build ok");
	CHECK(built_has(out, n, "agent_alice", "psql ag1.0123456789abcdef.0123456789abcdef"),
		  "built packet has exactly the rewritten parameters");
	CHECK(ag_pgproto_build_startup(&p, "", stamp, out, sizeof(out)) < 0, "empty role refused");
	CHECK(ag_pgproto_build_startup(&p, "a\nb", stamp, out, sizeof(out)) < 0, "role with newline refused");
	CHECK(ag_pgproto_build_startup(&p, "r", "has space", out, sizeof(out)) < 0, "stamp with space refused");
	CHECK(ag_pgproto_build_startup(&p, "r",
								   "ag1.0123456789abcdef.0123456789abcdef0123", out, sizeof(out)) < 0,
		  "41-byte stamp refused");
	CHECK(ag_pgproto_build_startup(&p, "agent_alice", stamp, out, 40) < 0, "small buffer refused");

	/* shared pool: one role and application_name for every agent */
	n = ag_pgproto_build_shared_startup(&p, out, sizeof(out));
	CHECK(n > 0, "shared build ok");
	CHECK(built_has(out, n, "agentgate_pool", "agentgate"),
		  "shared packet: agentgate_pool, agentgate, no stamp");
	CHECK(ag_pgproto_build_shared_startup(&p, out, 40) < 0, "shared: small buffer refused");
}

static void
test_error(void)
{
	uint8_t		buf[512];
	int			n;

	n = ag_pgproto_error(buf, sizeof(buf), "FATAL", "28000", "invalid token", "bad\x01 detail", NULL);
	CHECK(n > 0 && buf[0] == 'E' && ag_pg_get32(buf + 1) == (uint32_t) n - 1, "error framing");
	CHECK(n > 0 && buf[n - 1] == 0 && memmem(buf, (size_t) n, "C28000", 7) != NULL, "sqlstate field");
	CHECK(n > 0 && memmem(buf, (size_t) n, "Dbad? detail", 13) != NULL, "control char masked");
	n = ag_pgproto_error(buf, sizeof(buf), "FATAL", "28000", "TLS required", NULL, "Use TLS.");
	CHECK(n > 0 && memmem(buf, (size_t) n, "HUse TLS.", 10) != NULL &&
		  memmem(buf, (size_t) n, "\0D", 2) == NULL, "hint field, no detail field");
	CHECK(ag_pgproto_error(buf, 20, "FATAL", "28000", "invalid token", NULL, NULL) < 0, "too small");
	CHECK(ag_pgproto_error(buf, sizeof(buf), "FATAL", "280", "m", NULL, NULL) < 0, "bad sqlstate");
}

static void
test_reserved_database(void)
{
	CHECK(ag_pgproto_reserved_database("pgbouncer"), "pgbouncer is reserved");
	CHECK(ag_pgproto_reserved_database("PgBouncer"), "PgBouncer is reserved");
	CHECK(ag_pgproto_reserved_database("PGBOUNCER"), "PGBOUNCER is reserved");
	CHECK(!ag_pgproto_reserved_database("pgbouncer2"), "pgbouncer2 is not");
	CHECK(!ag_pgproto_reserved_database("app"), "app is not");
	CHECK(!ag_pgproto_reserved_database(NULL), "NULL is not");
}

int
main(void)
{
	test_reserved_database();
	test_parse();
	test_filter();
	test_build();
	test_error();
	return ag_test_report();
}
