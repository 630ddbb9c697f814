/*
 * policy_client.c — a small libpq client for the policy TAP tests: the
 * protocol paths psql cannot take (extended-protocol statements prepared
 * before a rule existed, fastpath function calls) and the rule-change delay
 * seen by a long-lived connection.
 *
 *   policy_client prepared AGENT_CONNINFO DBA_CONNINFO
 *   policy_client fastpath AGENT_CONNINFO FUNC_OID int|text ARG
 *   policy_client delay    AGENT_CONNINFO DBA_CONNINFO ROUNDS
 *
 * Prints one line per step ("ok ..." or "error SQLSTATE message") and exits
 * non-zero only when it cannot run at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "connection failed: %s", PQerrorMessage(c));
		exit(2);
	}
	return c;
}

/* Print the outcome of res as one line; returns 1 when it succeeded. */
static int
report(const char *step, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	int			ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);

	if (ok)
		printf("%s: ok %s\n", step, PQcmdStatus(res));
	else
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		printf("%s: error %s %s\n", step, state ? state : "?????", msg ? msg : "");
	}
	PQclear(res);
	return ok;
}

static void
run_sql(PGconn *c, const char *step, const char *sql)
{
	report(step, PQexec(c, sql));
}

static int
mode_prepared(const char *agent_ci, const char *dba_ci)
{
	PGconn	   *agent = connect_or_die(agent_ci);
	PGconn	   *dba = connect_or_die(dba_ci);
	const char *params[1] = {"changed"};

	/* Parse before the rule exists; Bind/Execute before and after it. */
	report("parse", PQprepare(agent, "upd",
							  "UPDATE regress_tap_t SET v = $1 WHERE id = 1", 1, NULL));
	report("execute before rule",
		   PQexecPrepared(agent, "upd", 1, params, NULL, NULL, 0));
	run_sql(dba, "dba adds rule",
			"SELECT agentgate.block(commands => '{UPDATE}', relation => 'regress_tap_t', "
			"reason => 'tap: frozen')");
	report("execute after rule",
		   PQexecPrepared(agent, "upd", 1, params, NULL, NULL, 0));
	/* unnamed statement, extended protocol */
	report("unnamed extended",
		   PQexecParams(agent, "UPDATE regress_tap_t SET v = $1 WHERE id = 2",
						1, NULL, params, NULL, NULL, 0));
	run_sql(dba, "dba removes rule",
			"DELETE FROM agentgate.rules WHERE reason = 'tap: frozen'");
	report("execute after removal",
		   PQexecPrepared(agent, "upd", 1, params, NULL, NULL, 0));
	PQfinish(agent);
	PQfinish(dba);
	return 0;
}

static int
mode_fastpath(const char *agent_ci, const char *oid_s, const char *kind,
			  const char *arg)
{
	PGconn	   *agent = connect_or_die(agent_ci);
	PQArgBlock	args[1];
	char		buf[8192];
	int			result_len = 0;
	int			intres = 0;
	int			is_int = strcmp(kind, "int") == 0;
	PGresult   *res;

	if (is_int)
	{
		args[0].len = 4;
		args[0].isint = 1;
		args[0].u.integer = atoi(arg);
		res = PQfn(agent, (int) strtoul(oid_s, NULL, 10), &intres, &result_len,
				   1, args, 1);
	}
	else
	{
		args[0].len = (int) strlen(arg);
		args[0].isint = 0;
		args[0].u.ptr = (int *) arg;
		res = PQfn(agent, (int) strtoul(oid_s, NULL, 10), (int *) buf, &result_len,
				   0, args, 1);
	}
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		if (is_int)
			printf("fastpath: ok %d\n", intres);
		else
			printf("fastpath: ok %d bytes\n", result_len);
		PQclear(res);
	}
	else
		report("fastpath", res);
	PQfinish(agent);
	return 0;
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/*
 * Each round: the DBA commits a rule, and the agent's very next statement
 * must be refused; then the DBA removes it and the next statement must run.
 * Reports how many next statements saw the change, and the agent's latency
 * for the first statement after a change vs. a steady one.
 */
static int
mode_delay(const char *agent_ci, const char *dba_ci, int rounds)
{
	PGconn	   *agent = connect_or_die(agent_ci);
	PGconn	   *dba = connect_or_die(dba_ci);
	int			saw_block = 0,
				saw_allow = 0,
				i;
	double	   *first = calloc(rounds, sizeof(double));
	double	   *steady = calloc(rounds, sizeof(double));
	PGresult   *res;
	double		t;

	for (i = 0; i < rounds; i++)
	{
		res = PQexec(dba, "SELECT agentgate.block(commands => '{SELECT}', "
					 "relation => 'regress_tap_t', reason => 'tap: delay')");
		PQclear(res);
		t = now_us();
		res = PQexec(agent, "SELECT count(*) FROM regress_tap_t");
		first[i] = now_us() - t;
		if (PQresultStatus(res) == PGRES_FATAL_ERROR)
			saw_block++;
		PQclear(res);
		res = PQexec(dba, "DELETE FROM agentgate.rules WHERE reason = 'tap: delay'");
		PQclear(res);
		res = PQexec(agent, "SELECT count(*) FROM regress_tap_t");
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			saw_allow++;
		PQclear(res);
		t = now_us();
		res = PQexec(agent, "SELECT count(*) FROM regress_tap_t");
		steady[i] = now_us() - t;
		PQclear(res);
	}
	qsort(first, rounds, sizeof(double), cmp_double);
	qsort(steady, rounds, sizeof(double), cmp_double);
	printf("delay: %d/%d blocked on the next statement, %d/%d allowed again on the next statement\n",
		   saw_block, rounds, saw_allow, rounds);
	printf("latency: median %.0f us for the first statement after a change, %.0f us steady\n",
		   first[rounds / 2], steady[rounds / 2]);
	PQfinish(agent);
	PQfinish(dba);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "prepared") == 0)
		return mode_prepared(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "fastpath") == 0)
		return mode_fastpath(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 5 && strcmp(argv[1], "delay") == 0)
		return mode_delay(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: policy_client prepared|fastpath|delay ...\n");
	return 2;
}
