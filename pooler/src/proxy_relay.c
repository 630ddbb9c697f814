/*-------------------------------------------------------------------------
 *
 * proxy_relay.c
 *	  Relay between an authenticated client and its PgBouncer connection.
 *
 * Client to server: only the framing is followed (type byte + int32
 * length), never the content.  A FunctionCall ('F') is refused before any
 * of its bytes are forwarded: no server hook sees a fastpath call of a
 * built-in function, so the proxy is the only place to stop it.  A length
 * below 4 or above max_message_bytes is refused too.  The refusal is FATAL
 * and closes the connection: an ERROR would need a ReadyForQuery that only
 * the server can produce in step with the rest of the stream.
 *
 * Server to client: bytes pass untouched; the framing is tracked only to
 * know where a message ends, so that a FATAL ErrorResponse of the proxy's
 * own (revocation, token expiry, shutdown) is never spliced into the
 * middle of a server message.  (The scanners are in pgproto.c.)
 *
 * The relay is the hot path, so it does its own I/O rather than going
 * through bufferevents: when the login ends, the client's TLS session and
 * socket are taken over from the login phase's bufferevent.  Each wakeup
 * reads what is there in one go (SSL read-ahead: one read() per batch of
 * TLS records) into a scratch buffer shared by all connections, scans it,
 * and writes it on at once: one SSL_write (so as few TLS records as the
 * batch needs) or one write().  Only bytes the other side cannot take yet
 * are copied into a per-connection queue, allocated on first need.  Read
 * events are persistent; a write event is added only while a queue holds
 * bytes, so a request/response exchange costs no epoll_ctl calls.
 *
 * Backpressure: a side stops being read while the queue towards the
 * other side holds more than AG_RELAY_HIGH_WATER bytes, and resumes below
 * AG_RELAY_LOW_WATER.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

/* Bytes read per chunk; a TLS record carries at most 16 KiB. */
#define RELAY_CHUNK			(64 * 1024)
/* Room in front of a chunk for the bytes a scanner held back. */
#define RELAY_HEADROOM		16

/* Bytes waiting for a socket that could not take them yet. */
typedef struct relay_queue
{
	uint8_t    *data;
	size_t		off;			/* first byte not yet written */
	size_t		len;			/* bytes held from off */
	size_t		cap;
} relay_queue;

struct ag_relay
{
	SSL		   *ssl;			/* the client's TLS session */
	int			sfd;			/* PgBouncer socket, -1 once closed */
	struct event *crd;			/* client readable (persistent) */
	struct event *cwr;			/* client writable, while needed */
	struct event *srd;
	struct event *swr;
	int			crd_on;
	int			cwr_on;
	int			srd_on;
	int			swr_on;
	int			connecting;		/* connect() to PgBouncer in progress */
	int			closing;		/* flushing a final message, then close */
	int			c_paused;		/* client not read: to_server is full */
	int			s_paused;		/* PgBouncer not read: to_client is full */
	int			read_wants_write;	/* SSL_read needs the socket writable */
	int			write_wants_read;	/* SSL_write needs the socket readable */
	relay_queue to_server;
	relay_queue to_client;
	uint8_t		c_held[5];		/* incomplete client message header */
	size_t		c_heldlen;
	uint8_t		s_held[9];		/* PgBouncer's Authentication message */
	size_t		s_heldlen;
	ag_pg_client_scan cscan;
	ag_pg_server_scan sscan;
};

/* One connection is served at a time: they share the read buffer. */
static uint8_t scratch[RELAY_HEADROOM + RELAY_CHUNK];

int
ag_relay_at_boundary(const ag_client *c)
{
	return c->relay == NULL || ag_pgproto_server_at_boundary(&c->relay->sscan);
}

/*
 * Between transactions: every Query and Sync the client sent has had its
 * ReadyForQuery, the last one said idle, and nothing is half-sent.
 */
int
ag_relay_idle(const ag_client *c)
{
	const ag_relay *r = c->relay;

	return r != NULL && ag_pgproto_server_at_boundary(&r->sscan) &&
		r->sscan.ready == r->cscan.syncs && r->sscan.status == 'I' &&
		r->cscan.left == 0 && r->c_heldlen == 0 && r->to_server.len == 0 &&
		SSL_pending(r->ssl) == 0;
}

/* PgBouncer's first ReadyForQuery has passed: the login is over. */
int
ag_relay_ready_seen(const ag_client *c)
{
	return c->relay != NULL && c->relay->sscan.ready > 0;
}

/* Append to a queue; it grows to fit (bounded by the high-water checks). */
static int
queue_add(relay_queue *q, const uint8_t *p, size_t n)
{
	if (q->off > 0 && q->off + q->len + n > q->cap)
	{
		memmove(q->data, q->data + q->off, q->len);
		q->off = 0;
	}
	if (q->len + n > q->cap)
	{
		size_t		cap = q->cap ? q->cap : 16 * 1024;
		uint8_t    *d;

		while (cap < q->len + n)
			cap *= 2;
		d = realloc(q->data, cap);
		if (d == NULL)
			return -1;
		q->data = d;
		q->cap = cap;
	}
	memcpy(q->data + q->off + q->len, p, n);
	q->len += n;
	return 0;
}

static void
queue_consume(relay_queue *q, size_t n)
{
	q->off += n;
	q->len -= n;
	if (q->len == 0)
	{
		q->off = 0;
		/* a burst's memory is not kept for the life of the connection */
		if (q->cap > 64 * 1024)
		{
			free(q->data);
			q->data = NULL;
			q->cap = 0;
		}
	}
}

static void
set_event(struct event *ev, int *on, int want)
{
	if (want && !*on)
		event_add(ev, NULL);
	else if (!want && *on)
		event_del(ev);
	*on = want;
}

static void
update_events(ag_client *c)
{
	ag_relay   *r = c->relay;
	int			s_open = r->sfd >= 0;

	set_event(r->crd, &r->crd_on,
			  (!r->closing && !r->c_paused) || r->write_wants_read);
	set_event(r->cwr, &r->cwr_on,
			  (r->to_client.len > 0 && !r->write_wants_read) || r->read_wants_write);
	set_event(r->srd, &r->srd_on, s_open && !r->connecting && !r->s_paused);
	set_event(r->swr, &r->swr_on, s_open && (r->connecting || r->to_server.len > 0));
}

/*
 * SSL_get_error() needs an empty error queue before each call; checking
 * first is cheaper than clearing it on every read and write.
 */
static inline void
clear_tls_errors(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* Log the TLS error queue's first entry (or the socket error) and free c. */
static void
client_failed(ag_client *c, int sslerr)
{
	unsigned long e = ERR_get_error();
	char		why[300];

	if (e)
	{
		char		ebuf[200];

		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(why, sizeof(why), "TLS error: %s", ebuf);
	}
	else if (sslerr == SSL_ERROR_SYSCALL && errno != 0)
		snprintf(why, sizeof(why), "client socket error: %s", strerror(errno));
	else
		snprintf(why, sizeof(why), "client connection error");
	ERR_clear_error();
	ag_client_free(c, why);
}

/*
 * SSL_write as much of p as the socket takes.  Returns the bytes written,
 * or -1 if c has been freed.  Bytes not written must be offered again
 * first, from wherever they are (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
 */
static ssize_t
tls_write(ag_client *c, const uint8_t *p, size_t len)
{
	ag_relay   *r = c->relay;
	size_t		done = 0;

	r->write_wants_read = 0;
	while (done < len)
	{
		size_t		n;

		clear_tls_errors();
		if (SSL_write_ex(r->ssl, p + done, len - done, &n) == 1)
		{
			done += n;
			continue;
		}
		switch (SSL_get_error(r->ssl, 0))
		{
			case SSL_ERROR_WANT_WRITE:
				return (ssize_t) done;
			case SSL_ERROR_WANT_READ:
				r->write_wants_read = 1;
				return (ssize_t) done;
			default:
				client_failed(c, SSL_get_error(r->ssl, 0));
				return -1;
		}
	}
	return (ssize_t) done;
}

/*
 * Write the client's queue.  Returns -1 if c has been freed.  When the
 * queue empties while closing, the connection ends here.
 */
static int
client_flush(ag_client *c)
{
	ag_relay   *r = c->relay;

	if (r->to_client.len > 0)
	{
		ssize_t		n = tls_write(c, r->to_client.data + r->to_client.off, r->to_client.len);

		if (n < 0)
			return -1;
		queue_consume(&r->to_client, (size_t) n);
		if (r->to_client.len > 0)
			return 0;
	}
	if (r->closing)
	{
		ag_client_free(c, c->close_reason ? c->close_reason : "closed after error");
		return -1;
	}
	return 0;
}

/* Send to the client: straight away when nothing is queued. */
static int
client_send(ag_client *c, const uint8_t *p, size_t n)
{
	ag_relay   *r = c->relay;

	if (n == 0)
		return 0;
	/* nothing queued: one SSL_write of the whole batch, straight from p */
	if (r->to_client.len == 0 && !r->write_wants_read)
	{
		ssize_t		w = tls_write(c, p, n);

		if (w < 0)
			return -1;
		p += w;
		n -= (size_t) w;
	}
	if (n > 0 && queue_add(&r->to_client, p, n) < 0)
	{
		ag_client_free(c, "out of memory");
		return -1;
	}
	if (r->to_client.len >= AG_RELAY_HIGH_WATER)
		r->s_paused = 1;
	return 0;
}

static void
server_closed(ag_client *c, const char *why)
{
	ag_relay   *r = c->relay;

	if (r->sscan.last == 0 && ag_pgproto_server_at_boundary(&r->sscan))
		ag_client_fatal(c, "08006", "could not connect to the pooler", NULL, NULL);
	else
		ag_client_finish(c, why);
}

/* Write the PgBouncer queue.  Returns -1 if c has been freed. */
static int
server_flush(ag_client *c)
{
	ag_relay   *r = c->relay;

	while (r->to_server.len > 0)
	{
		ssize_t		n = send(r->sfd, r->to_server.data + r->to_server.off,
							 r->to_server.len, MSG_NOSIGNAL);

		if (n > 0)
		{
			queue_consume(&r->to_server, (size_t) n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		ag_log(AG_LOG_WARNING, c, "pooler connection error: %s", strerror(errno));
		server_closed(c, "pooler connection error");
		return -1;
	}
	return 0;
}

static int
server_send(ag_client *c, const uint8_t *p, size_t n)
{
	ag_relay   *r = c->relay;

	if (n == 0)
		return 0;
	if (r->to_server.len == 0 && !r->connecting)
	{
		ssize_t		w = send(r->sfd, p, n, MSG_NOSIGNAL);

		if (w < 0)
		{
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			{
				ag_log(AG_LOG_WARNING, c, "pooler connection error: %s", strerror(errno));
				server_closed(c, "pooler connection error");
				return -1;
			}
			w = 0;
		}
		p += w;
		n -= (size_t) w;
	}
	if (n > 0 && queue_add(&r->to_server, p, n) < 0)
	{
		ag_client_free(c, "out of memory");
		return -1;
	}
	if (r->to_server.len >= AG_RELAY_HIGH_WATER)
		r->c_paused = 1;
	return 0;
}

static void
refuse_message(ag_client *c, const char *sqlstate, const char *msg,
			   const char *detail, const char *hint)
{
	ag_log(AG_LOG_WARNING, c, "closing: %s", msg);
	if (ag_relay_at_boundary(c))
		ag_client_fatal(c, sqlstate, msg, detail, hint);
	else
		ag_client_free(c, msg);
}

/*
 * Scan and forward n client bytes at scratch + RELAY_HEADROOM, behind the
 * header bytes held from last time.  Returns -1 if c has been freed.
 */
static int
client_process(ag_client *c, size_t n)
{
	ag_relay   *r = c->relay;
	uint8_t    *p = scratch + RELAY_HEADROOM - r->c_heldlen;
	size_t		pass;

	memcpy(p, r->c_held, r->c_heldlen);
	n += r->c_heldlen;
	switch (ag_pgproto_scan_client(&r->cscan, p, n,
								   (uint32_t) ag_proxy_g.cfg->max_message_bytes, &pass))
	{
		case AG_FRAME_OK:
			break;
		case AG_FRAME_FUNCTION_CALL:
			refuse_message(c, "42501", "fastpath function calls are not allowed",
						   "agentgate-proxy does not forward FunctionCall messages.",
						   "Call the function in a SELECT statement.");
			return -1;
		case AG_FRAME_BAD_LENGTH:
			refuse_message(c, "08P01", "invalid message length", NULL, NULL);
			return -1;
	}
	r->c_heldlen = n - pass;
	memcpy(r->c_held, p + pass, r->c_heldlen);
	return server_send(c, p, pass);
}

/*
 * Read what the client has sent, until the socket is drained or the
 * queue towards PgBouncer is full.  Returns -1 if c has been freed.
 */
static int
client_read(ag_client *c)
{
	ag_relay   *r = c->relay;

	r->read_wants_write = 0;
	while (!r->closing && r->sfd >= 0 && !r->c_paused)
	{
		size_t		got = 0;
		int			err = SSL_ERROR_NONE;

		/* everything TLS already holds, then at most one more read() */
		do
		{
			size_t		nb;

			clear_tls_errors();
			errno = 0;
			if (SSL_read_ex(r->ssl, scratch + RELAY_HEADROOM + got, RELAY_CHUNK - got, &nb) == 1)
				got += nb;
			else
			{
				err = SSL_get_error(r->ssl, 0);
				break;
			}
		} while (got < RELAY_CHUNK && SSL_has_pending(r->ssl));

		if (got > 0 && client_process(c, got) < 0)
			return -1;
		switch (err)
		{
			case SSL_ERROR_NONE:
				if (got == RELAY_CHUNK || SSL_has_pending(r->ssl))
					continue;
				return 0;		/* drained; epoll says when there is more */
			case SSL_ERROR_WANT_READ:
				return 0;
			case SSL_ERROR_WANT_WRITE:
				r->read_wants_write = 1;
				return 0;
			case SSL_ERROR_ZERO_RETURN:
				ag_client_free(c, "client disconnected");
				return -1;
			default:
				/* an unexpected EOF is a client that just went away */
				if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
					(err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0))
				{
					ERR_clear_error();
					ag_client_free(c, "client disconnected");
				}
				else
					client_failed(c, err);
				return -1;
		}
	}
	return 0;
}

/*
 * Read what PgBouncer has sent, until its socket is drained or the queue
 * towards the client is full.  Returns -1 if c has been freed.
 */
static int
server_read(ag_client *c)
{
	ag_relay   *r = c->relay;

	while (r->sfd >= 0 && !r->s_paused)
	{
		ssize_t		n = read(r->sfd, scratch + RELAY_HEADROOM, RELAY_CHUNK);
		uint8_t    *p;
		size_t		len;
		size_t		pass;

		if (n < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			ag_log(AG_LOG_WARNING, c, "pooler connection error: %s", strerror(errno));
			server_closed(c, "pooler connection error");
			return -1;
		}
		if (n == 0)
		{
			server_closed(c, "pooler closed the connection");
			return -1;
		}
		p = scratch + RELAY_HEADROOM - r->s_heldlen;
		memcpy(p, r->s_held, r->s_heldlen);
		len = (size_t) n + r->s_heldlen;
		switch (ag_pgproto_scan_server(&r->sscan, p, len, &pass))
		{
			case AG_SERVER_OK:
				break;
			case AG_SERVER_AUTH_REQUEST:

				/*
				 * PgBouncer must admit the role without a password (trust
				 * or peer on its private socket).  If it asks for one, the
				 * client would answer with its token or a hash of it: the
				 * request never reaches the client.
				 */
				ag_log(AG_LOG_ERROR, c, "PgBouncer asked for a password (authentication request %u); "
					   "it must admit agent roles without one (auth_type trust on its private socket)",
					   r->sscan.auth_request);
				if (client_send(c, p, pass) < 0)
					return -1;
				ag_client_fatal(c, "08006", "login failed", NULL, NULL);
				return -1;
			case AG_SERVER_BAD_LENGTH:
				ag_client_free(c, "invalid message length from the pooler");
				return -1;
			case AG_SERVER_FOREIGN_STAMP:

				/*
				 * The client installed an application_name without its own
				 * stamp (the extension keeps the stamp on plain values, so
				 * this is another connection's): PgBouncer would re-send
				 * it with every later transaction.  Close the client.
				 */
				ag_log(AG_LOG_WARNING, c, "closing: the client set application_name to another session's stamp");
				if (client_send(c, p, pass) < 0)
					return -1;
				ag_client_fatal(c, "42501", "agent session changed its session stamp",
								"application_name was set to a value that does not end with this connection's stamp.",
								"Do not change the session stamp; open a new connection for a new session.");
				return -1;
		}
		r->s_heldlen = len - pass;
		memcpy(r->s_held, p + pass, r->s_heldlen);
		if (client_send(c, p, pass) < 0)
			return -1;
		if ((size_t) n < RELAY_CHUNK)
			return 0;			/* drained; epoll says when there is more */
	}
	return 0;
}

static void
client_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_client  *c = arg;
	ag_relay   *r = c->relay;

	if (r->to_client.len > 0 && ((what & EV_WRITE) || r->write_wants_read))
	{
		if (client_flush(c) < 0)
			return;
		/* PgBouncer's side was paused for this queue */
		if (r->s_paused && r->to_client.len < AG_RELAY_LOW_WATER)
		{
			r->s_paused = 0;
			if (r->sfd >= 0 && !r->connecting && server_read(c) < 0)
				return;
		}
	}
	if (((what & EV_READ) || r->read_wants_write) && client_read(c) < 0)
		return;
	update_events(c);
}

static void
server_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_client  *c = arg;
	ag_relay   *r = c->relay;

	if ((what & EV_WRITE) && r->connecting)
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		if (getsockopt(r->sfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0)
		{
			ag_log(AG_LOG_WARNING, c, "pooler connection error: %s", strerror(err));
			server_closed(c, "pooler connection error");
			return;
		}
		r->connecting = 0;
	}
	if ((what & EV_WRITE) && r->to_server.len > 0)
	{
		if (server_flush(c) < 0)
			return;
		/* the client's side was paused for this queue; TLS may hold bytes */
		if (r->c_paused && r->to_server.len < AG_RELAY_LOW_WATER)
		{
			r->c_paused = 0;
			if (client_read(c) < 0)
				return;
		}
	}
	if ((what & EV_READ) && server_read(c) < 0)
		return;
	update_events(c);
}

void
ag_relay_free(ag_client *c)
{
	ag_relay   *r = c->relay;

	if (r == NULL)
		return;
	if (r->crd)
		event_free(r->crd);
	if (r->cwr)
		event_free(r->cwr);
	if (r->srd)
		event_free(r->srd);
	if (r->swr)
		event_free(r->swr);
	if (r->sfd >= 0)
		close(r->sfd);
	if (r->ssl)
	{
		/* best effort close_notify; the socket is non-blocking */
		if (r->to_client.len == 0)
			SSL_shutdown(r->ssl);
		ERR_clear_error();
		SSL_free(r->ssl);
	}
	free(r->to_server.data);
	free(r->to_client.data);
	free(r);
	c->relay = NULL;
}

/*
 * End the relay: close PgBouncer's side, stop reading the client, send it
 * msg after what is queued, then free the connection.
 */
void
ag_relay_close(ag_client *c, const uint8_t *msg, size_t len)
{
	ag_relay   *r = c->relay;

	if (r->sfd >= 0)
	{
		event_del(r->srd);
		event_del(r->swr);
		r->srd_on = r->swr_on = 0;
		close(r->sfd);
		r->sfd = -1;
	}
	queue_consume(&r->to_server, r->to_server.len);
	r->closing = 1;
	if (len > 0 && queue_add(&r->to_client, msg, len) < 0)
	{
		ag_client_free(c, "out of memory");
		return;
	}
	if (r->write_wants_read || client_flush(c) == 0)
		update_events(c);
}

int
ag_relay_start(ag_client *c, const uint8_t *startup, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t	sslen;
	ag_relay   *r;
	struct evbuffer *pipelined;
	int			e;

	if (ag_pgbouncer_addr(&ss, &sslen) < 0)
	{
		errno = EINVAL;
		return -1;
	}
	r = calloc(1, sizeof(*r));
	pipelined = evbuffer_new();
	if (r == NULL || pipelined == NULL)
	{
		free(r);
		if (pipelined)
			evbuffer_free(pipelined);
		errno = ENOMEM;
		return -1;
	}
	r->sfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->sfd >= 0 && connect(r->sfd, (struct sockaddr *) &ss, sslen) < 0)
	{
		if (errno == EINPROGRESS)
			r->connecting = 1;
		else
		{
			e = errno;
			close(r->sfd);
			r->sfd = -1;
			errno = e;
		}
	}
	if (r->sfd >= 0)
	{
		r->crd = event_new(ag_proxy_g.base, c->fd, EV_READ | EV_PERSIST, client_cb, c);
		r->cwr = event_new(ag_proxy_g.base, c->fd, EV_WRITE | EV_PERSIST, client_cb, c);
		r->srd = event_new(ag_proxy_g.base, r->sfd, EV_READ | EV_PERSIST, server_cb, c);
		r->swr = event_new(ag_proxy_g.base, r->sfd, EV_WRITE | EV_PERSIST, server_cb, c);
		errno = ENOMEM;
	}
	if (r->sfd < 0 || !r->crd || !r->cwr || !r->srd || !r->swr ||
		queue_add(&r->to_server, startup, len) < 0)
	{
		e = errno;
		c->relay = r;
		ag_relay_free(c);
		evbuffer_free(pipelined);
		errno = e;
		return -1;
	}

	/*
	 * Take the client's TLS session and socket over from the login
	 * phase's bufferevent (created without BEV_OPT_CLOSE_ON_FREE), with
	 * anything it still holds: output not yet sent (it goes first) and
	 * input the client pipelined after its password.
	 */
	r->ssl = bufferevent_openssl_get_ssl(c->cbev);
	SSL_set_mode(r->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_read_ahead(r->ssl, 1);
	r->cscan.syncs = 1;			/* the ReadyForQuery that ends the login */
	r->sscan.stamp = c->stamp[0] ? c->stamp : NULL;
	bufferevent_disable(c->cbev, EV_READ | EV_WRITE);
	evbuffer_add_buffer(pipelined, bufferevent_get_input(c->cbev));
	while (evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0)
	{
		struct evbuffer *out = bufferevent_get_output(c->cbev);
		size_t		n = evbuffer_get_length(out);

		if (queue_add(&r->to_client, evbuffer_pullup(out, -1), n) < 0)
			break;
		evbuffer_drain(out, n);
	}
	bufferevent_free(c->cbev);
	c->cbev = NULL;
	c->relay = r;

	if (!r->connecting && server_flush(c) < 0)
		goto freed;
	/* the client's early bytes are scanned as if just read */
	while (evbuffer_get_length(pipelined) > 0)
	{
		int			n = evbuffer_remove(pipelined, scratch + RELAY_HEADROOM, RELAY_CHUNK);

		if (n <= 0)
			break;
		if (client_process(c, (size_t) n) < 0)
			goto freed;
	}
	evbuffer_free(pipelined);
	if (r->to_client.len > 0 && client_flush(c) < 0)
		return 0;
	/* TLS may hold decrypted bytes the socket will not announce */
	if (client_read(c) < 0)
		return 0;
	update_events(c);
	return 0;

freed:
	evbuffer_free(pipelined);
	return 0;
}
