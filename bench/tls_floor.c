/*-------------------------------------------------------------------------
 *
 * tls_floor.c
 *	  The least any TLS-terminating hop in front of PgBouncer can cost: a
 *	  benchmark control for bench/tps.pl, not part of agentgate.
 *
 * It answers PostgreSQL's SSLRequest with 'S', completes the TLS
 * handshake, connects to PgBouncer's unix socket and then copies bytes
 * both ways with one epoll loop, one thread, non-blocking sockets and no
 * queues beyond one buffer per direction.  No authentication, no framing,
 * no policy: whatever agentgate-proxy costs beyond this is the price of
 * what it checks; what this costs is the price of a TLS hop on the
 * machine at hand.  It never waits for a socket to become writable, which
 * is enough for pgbench's small request/response traffic and nothing else.
 *
 *	  tls_floor LISTEN_PORT CERT KEY UNIX_SOCKET_PATH
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE	(64 * 1024)

typedef struct conn
{
	int			cfd;			/* client TCP socket */
	int			sfd;			/* PgBouncer unix socket */
	SSL		   *ssl;
	int			handshaken;
	unsigned char to_s[BUF_SIZE];	/* client bytes PgBouncer has not taken */
	size_t		to_s_len;
	unsigned char to_c[BUF_SIZE];	/* PgBouncer bytes the client has not taken */
	size_t		to_c_len;
} conn;

/* epoll data: the connection, and which socket (low bit) */
#define TAG(c, server) ((void *) ((uintptr_t) (c) | (server)))
#define DEAD ((uintptr_t) 2)		/* an event of a connection closed meanwhile */

static int	ep;
static const char *upstream;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void
conn_close(conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->cfd);
	if (c->sfd >= 0)
		close(c->sfd);
	free(c);
}

/* flush what is buffered towards each side; -1 on a dead connection */
static int
flush(conn *c)
{
	while (c->to_s_len > 0)
	{
		ssize_t		n = write(c->sfd, c->to_s, c->to_s_len);

		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		memmove(c->to_s, c->to_s + n, c->to_s_len - n);
		c->to_s_len -= n;
	}
	while (c->to_c_len > 0)
	{
		int			n = SSL_write(c->ssl, c->to_c, (int) c->to_c_len);

		if (n <= 0)
		{
			int			e = SSL_get_error(c->ssl, n);

			return (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? 0 : -1;
		}
		memmove(c->to_c, c->to_c + n, c->to_c_len - n);
		c->to_c_len -= n;
	}
	return 0;
}

static int
on_client(conn *c)
{
	if (!c->handshaken)
	{
		int			r = SSL_accept(c->ssl);

		if (r <= 0)
		{
			int			e = SSL_get_error(c->ssl, r);

			return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? 0 : -1;
		}
		c->handshaken = 1;
	}
	for (;;)
	{
		int			n;

		if (c->to_s_len == BUF_SIZE)
			break;
		n = SSL_read(c->ssl, c->to_s + c->to_s_len, (int) (BUF_SIZE - c->to_s_len));
		if (n <= 0)
		{
			int			e = SSL_get_error(c->ssl, n);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			return -1;
		}
		c->to_s_len += n;
	}
	return flush(c);
}

static int
on_server(conn *c)
{
	for (;;)
	{
		ssize_t		n;

		if (c->to_c_len == BUF_SIZE)
			break;
		n = read(c->sfd, c->to_c + c->to_c_len, BUF_SIZE - c->to_c_len);
		if (n == 0)
			return -1;
		if (n < 0)
		{
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->to_c_len += n;
	}
	return flush(c);
}

static void
accept_one(int lfd, SSL_CTX *ctx)
{
	int			fd = accept(lfd, NULL, NULL);
	unsigned char req[8];
	struct sockaddr_un sa;
	conn	   *c;
	int			one = 1;
	struct epoll_event ev;

	if (fd < 0)
		return;
	/* the SSLRequest arrives at once; a blocking read keeps this short */
	if (read(fd, req, 8) != 8 || req[4] != 0x04 || req[5] != 0xd2 ||
		req[6] != 0x16 || req[7] != 0x2f || write(fd, "S", 1) != 1)
	{
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nonblock(fd);
	c = calloc(1, sizeof(conn));
	c->cfd = fd;
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, fd);
	c->sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", upstream);
	if (connect(c->sfd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
	{
		conn_close(c);
		return;
	}
	nonblock(c->sfd);
	ev.events = EPOLLIN;
	ev.data.ptr = TAG(c, 0);
	epoll_ctl(ep, EPOLL_CTL_ADD, c->cfd, &ev);
	ev.data.ptr = TAG(c, 1);
	epoll_ctl(ep, EPOLL_CTL_ADD, c->sfd, &ev);
}

int
main(int argc, char **argv)
{
	SSL_CTX    *ctx;
	int			lfd;
	int			one = 1;
	struct sockaddr_in sa;
	struct epoll_event ev;
	struct epoll_event evs[64];

	if (argc != 5)
	{
		fprintf(stderr, "usage: tls_floor LISTEN_PORT CERT KEY UNIX_SOCKET_PATH\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	upstream = argv[4];
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
		SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1)
	{
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t) atoi(argv[1]));
	if (bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(lfd, 512) < 0)
		die("listen");
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	for (;;)
	{
		int			n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++)
		{
			uintptr_t	tag = (uintptr_t) evs[i].data.ptr;
			conn	   *c = (conn *) (tag & ~(uintptr_t) 1);

			if (tag == DEAD)
				continue;
			if (c == NULL)
			{
				accept_one(lfd, ctx);
				continue;
			}
			if (((tag & 1) ? on_server(c) : on_client(c)) < 0)
			{
				/* the other event of this connection may be in evs: drop it */
				for (int j = i + 1; j < n; j++)
					if (((uintptr_t) evs[j].data.ptr & ~(uintptr_t) 1) == (uintptr_t) c)
						evs[j].data.ptr = (void *) DEAD;
				conn_close(c);
			}
		}
	}
}
