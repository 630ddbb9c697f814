/*-------------------------------------------------------------------------
 *
 * connect_client.c
 *	  New connections per second over TLS, with or without resuming the
 *	  TLS session of the previous connection: a benchmark client for
 *	  bench/proxy_connect.pl, not part of agentgate.
 *
 * libpq (so pgbench -C) never resumes a TLS session and builds a TLS
 * context for every connection, which costs the client more than the
 * server.  This client builds one context per process, keeps the session
 * ticket of each connection for the next one when asked to, and does what
 * pgbench -C does per transaction: SSLRequest, TLS, startup packet, a
 * cleartext password if asked for, ReadyForQuery, "SELECT 1", Terminate.
 * The same client runs against every path, so the paths compare fairly.
 *
 *	  connect_client PORT SECONDS CLIENTS RESUME USER DATABASE APPNAME [PASSWORD]
 *
 * Prints "connections N seconds S resumed R failed F".
 *
 * With SECONDS = 0 it measures idle connections instead: one process opens
 * CLIENTS connections one after the other, each logged in and having run
 * "SELECT 1", prints "idle N failed F" once they are all open, and keeps
 * them open (and idle) until its standard input closes.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static const char *user, *database, *appname, *password;
static const char *why;			/* the step the last failure was at */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static int
read_full(SSL *ssl, unsigned char *buf, int n)
{
	int			got = 0;

	while (got < n)
	{
		int			r = SSL_read(ssl, buf + got, n - got);

		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* Read messages until ReadyForQuery; answers a password request. */
static int
until_ready(SSL *ssl)
{
	unsigned char hdr[5];
	unsigned char body[8192];

	for (;;)
	{
		uint32_t	len;

		if (read_full(ssl, hdr, 5) < 0)
			return -1;
		len = ((uint32_t) hdr[1] << 24 | hdr[2] << 16 | hdr[3] << 8 | hdr[4]) - 4;
		if (len > sizeof(body) || read_full(ssl, body, (int) len) < 0)
			return -1;
		if (hdr[0] == 'E')
		{
			static int	shown;

			/* the first error says what is wrong; the rest only count */
			if (!shown++)
			{
				uint32_t	i;

				for (i = 0; i + 1 < len; i++)
					if (body[i] == '\0')
						body[i] = ' ';
				fprintf(stderr, "server error: %.*s\n", (int) len, body);
			}
			return -1;
		}
		if (hdr[0] == 'R' && len >= 4 && body[3] == 3)
		{
			unsigned char msg[20000];
			size_t		pl;

			if (password == NULL || (pl = strlen(password) + 1) + 5 > sizeof(msg))
				return -1;
			msg[0] = 'p';
			put32(msg + 1, (uint32_t) (4 + pl));
			memcpy(msg + 5, password, pl);
			if (SSL_write(ssl, msg, (int) (5 + pl)) <= 0)
				return -1;
		}
		if (hdr[0] == 'Z')
			return 0;
	}
}

/*
 * Open and log in one connection that runs "SELECT 1"; -1 on failure.  With
 * keep, the connection stays open (*kept) instead of terminating.
 */
static int
one_connection(SSL_CTX *ctx, struct sockaddr_in *sa, SSL_SESSION **sess, int *resumed,
			   SSL **kept)
{
	unsigned char buf[1024];
	unsigned char ans;
	size_t		n = 8;
	int			one = 1;
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	SSL		   *ssl = NULL;
	int			rc = -1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	why = "connect";
	if (connect(fd, (struct sockaddr *) sa, sizeof(*sa)) < 0)
		goto out;
	why = "SSLRequest";
	put32(buf, 8);
	put32(buf + 4, 80877103);
	if (write(fd, buf, 8) != 8 || read(fd, &ans, 1) != 1 || ans != 'S')
		goto out;
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (sess && *sess)
		SSL_set_session(ssl, *sess);
	why = "TLS handshake";
	if (SSL_connect(ssl) != 1)
		goto out;
	why = "login";
	*resumed = SSL_session_reused(ssl);

	/* startup packet */
	put32(buf + 4, 196608);
#define PARAM(k, v) do { size_t kl = strlen(k) + 1, vl = strlen(v) + 1; \
		if (n + kl + vl + 1 > sizeof(buf)) goto out; \
		memcpy(buf + n, k, kl); n += kl; memcpy(buf + n, v, vl); n += vl; } while (0)
	PARAM("user", user);
	PARAM("database", database);
	PARAM("application_name", appname);
	buf[n++] = 0;
	put32(buf, (uint32_t) n);
	if (SSL_write(ssl, buf, (int) n) <= 0 || until_ready(ssl) < 0)
		goto out;
	buf[0] = 'Q';
	put32(buf + 1, 4 + 9);
	memcpy(buf + 5, "SELECT 1", 9);
	why = "SELECT 1";
	if (SSL_write(ssl, buf, 14) <= 0 || until_ready(ssl) < 0)
		goto out;
	if (kept)
	{
		*kept = ssl;
		return 0;
	}
	buf[0] = 'X';
	put32(buf + 1, 4);
	(void) SSL_write(ssl, buf, 5);
	/* a session freed without close_notify is marked not resumable */
	(void) SSL_shutdown(ssl);
	rc = 0;
	/* the ticket of this connection is the one to resume next */
	if (sess)
	{
		SSL_SESSION *s = SSL_get1_session(ssl);

		if (s && SSL_SESSION_is_resumable(s))
		{
			if (*sess)
				SSL_SESSION_free(*sess);
			*sess = s;
		}
		else if (s)
			SSL_SESSION_free(s);
	}
out:
	if (ssl)
		SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	return rc;
}

static int
idle(struct sockaddr_in *sa, int n)
{
	SSL_CTX    *ctx = SSL_CTX_new(TLS_client_method());
	SSL		  **conns = calloc((size_t) n, sizeof(SSL *));
	char		c;
	int			open = 0,
				failed = 0;
	int			i;

	if (ctx == NULL || conns == NULL)
		return 1;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* the client's own buffers are not what is measured: keep them small */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	for (i = 0; i < n; i++)
	{
		int			r;

		if (one_connection(ctx, sa, NULL, &r, &conns[open]) == 0)
			open++;
		else if (++failed > 10)
			break;
	}
	printf("idle %d failed %d\n", open, failed);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	for (i = 0; i < open; i++)
	{
		close(SSL_get_fd(conns[i]));
		SSL_free(conns[i]);
	}
	free(conns);
	SSL_CTX_free(ctx);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	double		seconds;
	int			clients;
	int			resume;
	int			pipefd[2];
	int			i;
	long		total = 0,
				resumed = 0,
				failed = 0;

	if (argc < 8)
	{
		fprintf(stderr, "usage: %s PORT SECONDS CLIENTS RESUME USER DATABASE APPNAME [PASSWORD]\n",
				argv[0]);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) atoi(argv[1]));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	seconds = atof(argv[2]);
	clients = atoi(argv[3]);
	resume = atoi(argv[4]);
	user = argv[5];
	database = argv[6];
	appname = argv[7];
	password = argc > 8 ? argv[8] : NULL;
	signal(SIGPIPE, SIG_IGN);
	if (seconds <= 0)
		return idle(&sa, clients);
	if (pipe(pipefd) < 0)
		return 1;

	for (i = 0; i < clients; i++)
	{
		if (fork() == 0)
		{
			SSL_CTX    *ctx = SSL_CTX_new(TLS_client_method());
			SSL_SESSION *sess = NULL;
			long		c[3] = {0, 0, 0};
			double		end = now() + seconds;

			SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
			SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
			while (now() < end)
			{
				int			r = 0;

				if (one_connection(ctx, &sa, resume ? &sess : NULL, &r, NULL) == 0)
				{
					c[0]++;
					c[1] += r;
				}
				else if (c[2]++ == 0)
					fprintf(stderr, "connection failed at: %s\n", why);
			}
			if (write(pipefd[1], c, sizeof(c)) != sizeof(c))
				_exit(1);
			_exit(0);
		}
	}
	close(pipefd[1]);
	for (i = 0; i < clients; i++)
	{
		long		c[3];

		if (read(pipefd[0], c, sizeof(c)) == sizeof(c))
		{
			total += c[0];
			resumed += c[1];
			failed += c[2];
		}
	}
	while (wait(NULL) > 0)
		;
	printf("connections %ld seconds %.3f resumed %ld failed %ld\n", total, seconds, resumed,
		   failed);
	return 0;
}
