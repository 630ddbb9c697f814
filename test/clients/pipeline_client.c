/*
 * pipeline_client.c — libpq pipeline mode with named prepared statements,
 * for the proxy's TAP tests: every connection of one identity prepares
 * the same names, errors arrive in the middle of pipelines, and the
 * statements must keep working across transactions (which PgBouncer's
 * transaction pool serves on any server connection).
 *
 *   pipeline_client CONNINFO NCONN ROUNDS
 *
 * Prints "ok <what>" or "not ok <what>: <why>" lines and exits 0 when
 * every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <libpq-fe.h>

static int	failures;

static void
check(int cond, const char *what, const char *why)
{
	if (cond)
		printf("ok %s\n", what);
	else
	{
		printf("not ok %s: %s\n", what, why ? why : "");
		failures++;
	}
}

/* The next result of the pipeline; a NULL between queries is skipped. */
static PGresult *
next(PGconn *c)
{
	PGresult   *r = PQgetResult(c);

	if (r == NULL)
		r = PQgetResult(c);
	return r;
}

static const char *
state_of(PGresult *r)
{
	const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}

/* Expect one result of status st (and a value when want is given). */
static void
expect(PGconn *c, ExecStatusType st, const char *want, const char *what)
{
	PGresult   *r = next(c);
	char		why[300];

	snprintf(why, sizeof(why), "status %s, sqlstate %s, %s",
			 r ? PQresStatus(PQresultStatus(r)) : "none", state_of(r),
			 r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	check(r && PQresultStatus(r) == st &&
		  (want == NULL || (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), want) == 0)),
		  what, why);
	PQclear(r);
}

static void
expect_error(PGconn *c, const char *sqlstate, const char *what)
{
	PGresult   *r = next(c);
	char		why[300];

	snprintf(why, sizeof(why), "status %s, sqlstate %s, %s",
			 r ? PQresStatus(PQresultStatus(r)) : "none", state_of(r),
			 r ? PQresultErrorMessage(r) : "");
	check(r && PQresultStatus(r) == PGRES_FATAL_ERROR && strcmp(state_of(r), sqlstate) == 0,
		  what, why);
	PQclear(r);
}

int
main(int argc, char **argv)
{
	int			nconn;
	int			rounds;
	PGconn	  **conns;
	int			i;
	int			k;
	char		what[200];

	if (argc != 4)
	{
		fprintf(stderr, "usage: pipeline_client CONNINFO NCONN ROUNDS\n");
		return 2;
	}
	nconn = atoi(argv[2]);
	rounds = atoi(argv[3]);
	conns = calloc((size_t) nconn, sizeof(PGconn *));
	for (i = 0; i < nconn; i++)
	{
		conns[i] = PQconnectdb(argv[1]);
		if (PQstatus(conns[i]) != CONNECTION_OK)
		{
			fprintf(stderr, "connection failed: %s", PQerrorMessage(conns[i]));
			return 2;
		}
		if (PQenterPipelineMode(conns[i]) != 1)
		{
			fprintf(stderr, "cannot enter pipeline mode\n");
			return 2;
		}
	}

	/* every connection prepares the same names, in one pipeline each */
	for (i = 0; i < nconn; i++)
	{
		PGconn	   *c = conns[i];

		PQsendPrepare(c, "add", "SELECT $1::int + 1", 1, NULL);
		PQsendPrepare(c, "pair", "SELECT $1::text || '-' || $2::text", 2, NULL);
		PQpipelineSync(c);
	}
	for (i = 0; i < nconn; i++)
	{
		snprintf(what, sizeof(what), "conn %d: both prepared", i);
		expect(conns[i], PGRES_COMMAND_OK, NULL, what);
		expect(conns[i], PGRES_COMMAND_OK, NULL, what);
		expect(conns[i], PGRES_PIPELINE_SYNC, NULL, what);
	}

	/* rounds of pipelined executions, interleaved across connections */
	for (k = 0; k < rounds; k++)
	{
		for (i = 0; i < nconn; i++)
		{
			char		a[16];
			char		b[16];
			const char *v1[1] = {a};
			const char *v2[2] = {a, b};

			snprintf(a, sizeof(a), "%d", k * 100 + i);
			snprintf(b, sizeof(b), "c%d", i);
			PQsendQueryPrepared(conns[i], "add", 1, v1, NULL, NULL, 0);
			PQsendQueryPrepared(conns[i], "pair", 2, v2, NULL, NULL, 0);
			PQsendQueryPrepared(conns[i], "add", 1, v1, NULL, NULL, 1);	/* binary */
			PQpipelineSync(conns[i]);
		}
		for (i = 0; i < nconn; i++)
		{
			char		want1[32];
			char		want2[32];
			PGresult   *r;

			snprintf(want1, sizeof(want1), "%d", k * 100 + i + 1);
			snprintf(want2, sizeof(want2), "%d-c%d", k * 100 + i, i);
			snprintf(what, sizeof(what), "round %d conn %d: add", k, i);
			expect(conns[i], PGRES_TUPLES_OK, want1, what);
			snprintf(what, sizeof(what), "round %d conn %d: pair", k, i);
			expect(conns[i], PGRES_TUPLES_OK, want2, what);
			r = next(conns[i]);
			snprintf(what, sizeof(what), "round %d conn %d: binary add", k, i);
			check(r && PQresultStatus(r) == PGRES_TUPLES_OK && PQgetlength(r, 0, 0) == 4 &&
				  (int) ntohl(*(uint32_t *) PQgetvalue(r, 0, 0)) == k * 100 + i + 1, what,
				  r ? PQresultErrorMessage(r) : "no result");
			PQclear(r);
			expect(conns[i], PGRES_PIPELINE_SYNC, NULL, "sync");
		}
	}

	/*
	 * Errors mid-pipeline: the server's (division by zero) and the
	 * proxy's (a name already used, an unknown name) abort what follows
	 * up to the Sync, and the statements still work afterwards.
	 */
	{
		PGconn	   *c = conns[0];
		const char *zero[1] = {"0"};
		const char *one[1] = {"1"};

		PQsendQueryPrepared(c, "add", 1, one, NULL, NULL, 0);
		PQsendPrepare(c, "div", "SELECT 1 / $1::int", 1, NULL);
		PQsendQueryPrepared(c, "div", 1, zero, NULL, NULL, 0);
		PQsendPrepare(c, "after_error", "SELECT 1", 0, NULL);
		PQsendQueryPrepared(c, "add", 1, one, NULL, NULL, 0);
		PQpipelineSync(c);
		PQsendPrepare(c, "add", "SELECT 2", 0, NULL);
		PQsendQueryPrepared(c, "add", 1, one, NULL, NULL, 0);
		PQpipelineSync(c);
		PQsendQueryPrepared(c, "missing", 0, NULL, NULL, NULL, 0);
		PQpipelineSync(c);
		PQsendDescribePrepared(c, "pair");
		PQsendQueryPrepared(c, "add", 1, one, NULL, NULL, 0);
		PQsendPrepare(c, "after_error", "SELECT 3", 0, NULL);
		PQsendQueryPrepared(c, "after_error", 0, NULL, NULL, NULL, 0);
		PQpipelineSync(c);

		expect(c, PGRES_TUPLES_OK, "2", "before the error");
		expect(c, PGRES_COMMAND_OK, NULL, "div prepared");
		expect_error(c, "22012", "division by zero");
		expect(c, PGRES_PIPELINE_ABORTED, NULL, "prepare after the error: aborted");
		expect(c, PGRES_PIPELINE_ABORTED, NULL, "execute after the error: aborted");
		expect(c, PGRES_PIPELINE_SYNC, NULL, "sync");
		expect_error(c, "42P05", "a name already used: 42P05");
		expect(c, PGRES_PIPELINE_ABORTED, NULL, "and what follows: aborted");
		expect(c, PGRES_PIPELINE_SYNC, NULL, "sync");
		expect_error(c, "26000", "an unknown name: 26000");
		expect(c, PGRES_PIPELINE_SYNC, NULL, "sync");
		{
			PGresult   *r = next(c);

			check(r && PQresultStatus(r) == PGRES_COMMAND_OK && PQnparams(r) == 2 &&
				  PQparamtype(r, 0) == 25 && PQnfields(r) == 1,
				  "describe a kept statement: 2 text parameters, 1 column",
				  r ? PQresultErrorMessage(r) : "no result");
			PQclear(r);
		}
		expect(c, PGRES_TUPLES_OK, "2", "the statements work after the errors");
		expect(c, PGRES_COMMAND_OK, NULL, "a name skipped after an error is free");
		expect(c, PGRES_TUPLES_OK, "3", "and usable");
		expect(c, PGRES_PIPELINE_SYNC, NULL, "sync");
	}
	for (i = 0; i < nconn; i++)
		PQfinish(conns[i]);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
