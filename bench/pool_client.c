/*-------------------------------------------------------------------------
 *
 * pool_client.c
 *	  Many agent identities at a steady pace: a benchmark client for
 *	  bench/pool_bench.pl, not part of agentgate.
 *
 * One process, libpq's asynchronous interface and poll(): it opens one
 * connection per token (the tokens, one a line, in TOKEN_FILE), at most
 * CONNECTING logins at a time, and once every connection is open (or has
 * failed) each one sends "SELECT 1" every INTERVAL_MS milliseconds, the
 * connections' phases spread evenly over the interval, for SECONDS.  A
 * connection whose answer has not arrived when its next turn comes skips
 * that turn (counted as late): the load never piles up behind a slow
 * server.  The latency of a statement is from its send to its result.
 *
 *	  pool_client HOST PORT DATABASE TOKEN_FILE N SECONDS INTERVAL_MS CONNECTING
 *
 * Prints one line:
 *	  connected C failed F statements S errors E late L p50_ms P p99_ms Q max_ms M cpu_s U
 * (cpu_s: its own user + system CPU seconds during the steady load).
 *
 * It raises its own open file limit to the hard limit (one descriptor per
 * connection, plus a few).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libpq-fe.h>

typedef enum
{
	C_WAITING,					/* not started yet */
	C_CONNECTING,
	C_IDLE,
	C_BUSY,
	C_DEAD
} cstate;

typedef struct
{
	PGconn	   *conn;
	cstate		state;
	PostgresPollingStatusType poll;
	double		sent;			/* when the statement in flight was sent */
	double		due;			/* when the next one is to be sent */
} client;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
		(double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static char **
read_tokens(const char *path, int n)
{
	FILE	   *f = fopen(path, "r");
	char	  **tok = calloc(n, sizeof(char *));
	char	   *line = NULL;
	size_t		cap = 0;
	int			i = 0;

	if (f == NULL || tok == NULL)
	{
		perror(path);
		exit(2);
	}
	while (i < n && getline(&line, &cap, f) > 0)
	{
		line[strcspn(line, "\r\n")] = '\0';
		tok[i++] = strdup(line);
	}
	fclose(f);
	free(line);
	if (i < n)
	{
		fprintf(stderr, "%s: %d tokens, %d needed\n", path, i, n);
		exit(2);
	}
	return tok;
}

static void
raise_fd_limit(int n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		rl.rlim_cur < (rlim_t) n + 16)
		fprintf(stderr, "pool_client: open file limit %llu is below %d connections + 16\n",
				(unsigned long long) rl.rlim_cur, n);
}

/* Starts a login; the connection is C_CONNECTING or C_DEAD afterwards. */
static void
start_login(client *c, const char *host, const char *port, const char *db,
			const char *token, int *failed)
{
	const char *keys[] = {"host", "port", "dbname", "user", "password", "sslmode",
	"application_name", "connect_timeout", NULL};
	const char *vals[] = {host, port, db, "agent", token, "require", "pool_bench", "60", NULL};

	c->conn = PQconnectStartParams(keys, vals, 0);
	if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD)
	{
		c->state = C_DEAD;
		(*failed)++;
		return;
	}
	c->state = C_CONNECTING;
	c->poll = PGRES_POLLING_WRITING;
}

int
main(int argc, char **argv)
{
	const char *host,
			   *port,
			   *db;
	char	  **tok;
	int			n,
				seconds,
				connecting_max;
	double		interval;
	client	   *cl;
	struct pollfd *pfd;
	int		   *pidx;
	int			connected = 0,
				failed = 0,
				started = 0,
				in_login = 0,
				errors = 0,
				late = 0,
				shown = 0;
	double	   *lat;
	size_t		nlat = 0,
				caplat;
	double		t_end;
	double		cpu0;

	if (argc != 9)
	{
		fprintf(stderr, "usage: %s HOST PORT DATABASE TOKEN_FILE N SECONDS INTERVAL_MS CONNECTING\n",
				argv[0]);
		return 2;
	}
	host = argv[1];
	port = argv[2];
	db = argv[3];
	n = atoi(argv[5]);
	seconds = atoi(argv[6]);
	interval = atof(argv[7]) / 1000.0;
	connecting_max = atoi(argv[8]);
	if (n < 1 || seconds < 1 || interval <= 0 || connecting_max < 1)
	{
		fprintf(stderr, "pool_client: bad arguments\n");
		return 2;
	}
	raise_fd_limit(n);
	tok = read_tokens(argv[4], n);
	cl = calloc(n, sizeof(client));
	pfd = calloc(n, sizeof(struct pollfd));
	pidx = calloc(n, sizeof(int));
	caplat = (size_t) n * (size_t) (seconds / interval + 2);
	lat = malloc(caplat * sizeof(double));
	if (!cl || !pfd || !pidx || !lat)
	{
		fprintf(stderr, "out of memory\n");
		return 2;
	}

	/* logins, at most connecting_max at a time */
	while (connected + failed < n)
	{
		int			np = 0;

		while (started < n && in_login < connecting_max)
		{
			start_login(&cl[started], host, port, db, tok[started], &failed);
			if (cl[started].state == C_CONNECTING)
				in_login++;
			started++;
		}
		for (int i = 0; i < started; i++)
		{
			if (cl[i].state != C_CONNECTING)
				continue;
			pfd[np].fd = PQsocket(cl[i].conn);
			pfd[np].events = cl[i].poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			pfd[np].revents = 0;
			pidx[np++] = i;
		}
		if (np == 0)
			continue;
		if (poll(pfd, np, 1000) < 0 && errno != EINTR)
		{
			perror("poll");
			return 2;
		}
		for (int k = 0; k < np; k++)
		{
			client	   *c = &cl[pidx[k]];

			if (pfd[k].revents == 0)
				continue;
			c->poll = PQconnectPoll(c->conn);
			if (c->poll == PGRES_POLLING_OK)
			{
				c->state = C_IDLE;
				connected++;
				in_login--;
			}
			else if (c->poll == PGRES_POLLING_FAILED)
			{
				if (shown++ < 5)
					fprintf(stderr, "login failed: %s", PQerrorMessage(c->conn));
				c->state = C_DEAD;
				failed++;
				in_login--;
			}
		}
	}

	/* the steady load */
	cpu0 = cpu_seconds();
	{
		double		t0 = now();

		for (int i = 0; i < n; i++)
			cl[i].due = t0 + interval * i / n;
		t_end = t0 + seconds;
	}
	for (;;)
	{
		double		t = now(),
					next = t_end;
		int			np = 0,
					busy = 0;

		for (int i = 0; i < n; i++)
		{
			client	   *c = &cl[i];

			if (c->state == C_IDLE && t >= c->due && t < t_end)
			{
				if (!PQsendQuery(c->conn, "SELECT 1"))
				{
					errors++;
					if (shown++ < 5)
						fprintf(stderr, "send failed: %s", PQerrorMessage(c->conn));
					c->state = C_DEAD;
					continue;
				}
				c->sent = t;
				c->state = C_BUSY;
				c->due += interval;
			}
			else if (c->state == C_BUSY && t >= c->due)
			{
				/* its answer is late: that turn is skipped */
				while (c->due <= t)
				{
					c->due += interval;
					late++;
				}
			}
			if (c->state == C_BUSY)
			{
				pfd[np].fd = PQsocket(c->conn);
				pfd[np].events = POLLIN;
				pfd[np].revents = 0;
				pidx[np++] = i;
				busy++;
			}
			if (c->state != C_DEAD && c->due < next)
				next = c->due;
		}
		if (t >= t_end && busy == 0)
			break;
		{
			int			ms = (int) ((next - t) * 1000.0);

			if (ms < 0)
				ms = 0;
			if (t >= t_end)
				ms = 100;
			if (poll(pfd, np, ms) < 0 && errno != EINTR)
			{
				perror("poll");
				return 2;
			}
		}
		t = now();
		for (int k = 0; k < np; k++)
		{
			client	   *c = &cl[pidx[k]];
			PGresult   *res;
			int			bad = 0;

			if (pfd[k].revents == 0)
				continue;
			if (!PQconsumeInput(c->conn))
			{
				errors++;
				if (shown++ < 5)
					fprintf(stderr, "connection lost: %s", PQerrorMessage(c->conn));
				c->state = C_DEAD;
				continue;
			}
			if (PQisBusy(c->conn))
				continue;
			while ((res = PQgetResult(c->conn)) != NULL)
			{
				if (PQresultStatus(res) != PGRES_TUPLES_OK)
				{
					bad = 1;
					if (shown++ < 5)
						fprintf(stderr, "statement failed: %s", PQresultErrorMessage(res));
				}
				PQclear(res);
			}
			if (bad)
				errors++;
			else if (nlat < caplat)
				lat[nlat++] = t - c->sent;
			c->state = C_IDLE;
		}
		if (t > t_end + 30)
			break;				/* answers that never come: give up */
	}

	qsort(lat, nlat, sizeof(double), cmp_double);
	printf("connected %d failed %d statements %zu errors %d late %d p50_ms %.3f p99_ms %.3f max_ms %.3f cpu_s %.3f\n",
		   connected, failed, nlat, errors, late,
		   nlat ? lat[nlat / 2] * 1000.0 : 0.0,
		   nlat ? lat[(size_t) ((nlat - 1) * 0.99)] * 1000.0 : 0.0,
		   nlat ? lat[nlat - 1] * 1000.0 : 0.0,
		   cpu_seconds() - cpu0);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		if (cl[i].conn)
			PQfinish(cl[i].conn);
	return 0;
}
