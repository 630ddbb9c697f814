/*-------------------------------------------------------------------------
 *
 * proxy_relay.c
 *	  Relay between an authenticated client and its PgBouncer connection.
 *
 * The relay is one object that owns everything of a connection after its
 * login: the client's socket events and TLS session, the PgBouncer
 * socket, the queues between them, and the protocol state of both
 * directions (pgstream.c: framing, FunctionCall refused, the client's
 * named prepared statements).  It reports up through one hook, ended(),
 * called once when the relay is over (after a final message, if there
 * was one, has been flushed or has had its time); the owner then frees
 * it.  The owner calls down to end it (ag_relay_end: a FATAL at a message
 * boundary, otherwise just closing), to ask whether it is idle, and to
 * free it.  Neither ag_relay_start nor ag_relay_end calls the hook: what
 * they set going runs from the event loop, so the owner's own state is
 * never freed under it.
 *
 * Errors the relay finds itself (FunctionCall, bad lengths, a pooler
 * that asks for a password or falls out of step) end it with a FATAL
 * ErrorResponse when the client's stream is at a message boundary, and
 * by closing the socket otherwise.  FATAL rather than ERROR for
 * FunctionCall: an ERROR must be followed by a ReadyForQuery that only
 * the server can place correctly in the stream.
 *
 * The relay is the hot path, so it does its own I/O rather than going
 * through bufferevents.  Each wakeup reads what is there in one go (SSL
 * read-ahead: one read() per batch of TLS records) into a scratch buffer
 * shared by all connections, runs it through the protocol state into the
 * queue towards the other side, and writes that queue at once: one
 * SSL_write (so as few TLS records as the batch needs) or one write().
 * Read events are persistent; a write event is added only while a queue
 * holds bytes, so a request/response exchange costs no epoll_ctl calls.
 *
 * Content patterns: what pgstream.c passes towards the client goes through
 * the pattern filter (pgfilter.c) on its way into the client's queue, with
 * the patterns that apply to the connection's role; a new pattern set is
 * taken at the next message boundary.  A message the filter refuses (too
 * large to check, or a matcher failure) ends the relay: fail closed.
 *
 * Backpressure: a side stops being read while the queue towards the
 * other side holds more than AG_RELAY_HIGH_WATER bytes, and resumes below
 * AG_RELAY_LOW_WATER; the client also while AG_PGS_MAX_PENDING answers
 * are outstanding.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"
#include "ag_pgfilter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/err.h>

/* Bytes read per chunk; a TLS record carries at most 16 KiB. */
#define RELAY_CHUNK			(64 * 1024)
/* How long a client may take to read its final error message. */
#define RELAY_LINGER_SECONDS 5

struct ag_relay
{
	const ag_relay_hooks *hooks;
	void	   *owner;
	const ag_client *log_as;	/* for log lines only */
	SSL		   *ssl;			/* the client's TLS session */
	int			cfd;			/* the client's socket (the owner closes it) */
	int			sfd;			/* PgBouncer socket, -1 once closed */
	struct event *crd;			/* client readable (persistent) */
	struct event *cwr;			/* client writable, while needed */
	struct event *srd;
	struct event *swr;
	struct event *linger;		/* a final message's time to be read */
	int			crd_on;
	int			cwr_on;
	int			srd_on;
	int			swr_on;
	int			connecting;		/* connect() to PgBouncer in progress */
	int			closing;		/* flushing a final message, then ended() */
	int			end_now;		/* ended() from the loop, at once */
	const char *end_reason;
	int			c_paused;		/* client not read: to_server is full */
	int			s_paused;		/* PgBouncer not read: to_client is full */
	int			read_wants_write;	/* SSL_read needs the socket writable */
	int			write_wants_read;	/* SSL_write needs the socket readable */
	ag_buf		to_server;
	ag_buf		to_client;
	ag_buf		early;			/* client bytes not yet through the protocol
								 * state: sent before the relay started, or
								 * left over by a stall */
	ag_pgstream *ps;			/* the protocol, both directions */
	ag_buf		from_ps;		/* pgstream's output, before the filter */
	ag_pgfilter *pf;			/* content patterns, towards the client */
	ag_pattern_set *patterns;	/* the set pf uses (a reference) */
	uint8_t    *active;			/* which of its patterns apply to role */
	int			active_cap;
	int			filter_refused; /* pf refused a message, at a boundary */
	char		role[AG_PGPROTO_NAMELEN + 1];
};

/* One connection is served at a time: they share the read buffer. */
static uint8_t scratch[RELAY_CHUNK];

/*
 * Between transactions: every message has had its answer, the last
 * ReadyForQuery said idle, and nothing is half-sent.
 */
int
ag_relay_idle(const ag_relay *r)
{
	return r != NULL && !r->closing && ag_pgs_idle(r->ps) && r->to_server.len == 0 &&
		r->early.len == 0 && SSL_pending(r->ssl) == 0;
}

/*
 * Give back the memory of queues that are empty: an idle connection should
 * cost its TLS session and state, not 16 KiB per queue.  Called for every
 * relay every few seconds, so a busy one still allocates nothing per
 * exchange and an idle one keeps its queues no longer than that.
 */
size_t
ag_relay_trim(ag_relay *r)
{
	return ag_buf_trim(&r->to_server) + ag_buf_trim(&r->to_client) +
		ag_buf_trim(&r->early) + ag_buf_trim(&r->from_ps);
}

/*
 * A CancelRequest names this connection (PgBouncer's key for it) and,
 * when only_outstanding, the connection has a request in flight.
 */
int
ag_relay_cancel_matches(const ag_relay *r, const uint8_t key[8], int only_outstanding)
{
	uint8_t		mine[8];

	if (r == NULL || r->ps == NULL || !ag_pgs_cancel_key(r->ps, mine) ||
		memcmp(mine, key, 8) != 0)
		return 0;
	return !only_outstanding || ag_pgs_outstanding(r->ps);
}

/* PgBouncer's first ReadyForQuery has passed: the login is over. */
int
ag_relay_ready_seen(const ag_relay *r)
{
	return r != NULL && r->ps != NULL && ag_pgs_ready_seen(r->ps);
}

/* The relay is over: the owner frees it.  Always returns -1. */
static int
relay_ended(ag_relay *r, const char *reason)
{
	r->hooks->ended(r->owner, reason);
	return -1;
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
update_events(ag_relay *r)
{
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

/* The TLS error queue's first entry (or the socket error) ends the relay. */
static int
client_failed(ag_relay *r, int sslerr)
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
	return relay_ended(r, why);
}

/*
 * SSL_write as much of p as the socket takes.  Returns the bytes written,
 * or -1 if the relay has ended.  Bytes not written must be offered again
 * first, from wherever they are (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
 */
static ssize_t
tls_write(ag_relay *r, const uint8_t *p, size_t len)
{
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
				return client_failed(r, SSL_get_error(r->ssl, 0));
		}
	}
	return (ssize_t) done;
}

/*
 * Write the client's queue.  Returns -1 if the relay has ended: when the
 * queue empties while closing, it ends here.
 */
static int
client_flush(ag_relay *r)
{
	if (r->to_client.len > 0)
	{
		ssize_t		n = tls_write(r, r->to_client.data + r->to_client.off, r->to_client.len);

		if (n < 0)
			return -1;
		ag_buf_consume(&r->to_client, (size_t) n);
	}
	if (r->to_client.len > 0)
	{
		if (r->to_client.len >= AG_RELAY_HIGH_WATER)
			r->s_paused = 1;
		return 0;
	}
	if (r->closing)
		return relay_ended(r, r->end_reason ? r->end_reason : "closed after error");
	return 0;
}

static void
close_server(ag_relay *r)
{
	if (r->sfd >= 0)
	{
		event_del(r->srd);
		event_del(r->swr);
		r->srd_on = r->swr_on = 0;
		close(r->sfd);
		r->sfd = -1;
	}
	ag_buf_consume(&r->to_server, r->to_server.len);
}

/*
 * Stop relaying; the client gets what is queued for it, then msg (when
 * given), then ended(reason).  Nothing is written here: the client's
 * write event does it from the loop.
 */
static void
start_closing(ag_relay *r, const uint8_t *msg, size_t len, const char *reason)
{
	struct timeval tv = {RELAY_LINGER_SECONDS, 0};

	close_server(r);
	r->closing = 1;
	r->end_reason = reason;
	if (len > 0 && ag_buf_add(&r->to_client, msg, len) < 0)
		r->end_now = 1;
	evtimer_add(r->linger, &tv);
	update_events(r);
	event_active(r->cwr, EV_WRITE, 0);
}

/*
 * End with a FATAL ErrorResponse when the client's stream is at a message
 * boundary (after what is queued for it), otherwise by closing at once.
 */
static void
relay_fatal(ag_relay *r, const char *sqlstate, const char *msg, const char *detail,
			const char *hint, const char *reason)
{
	uint8_t		buf[1024];
	int			n = -1;

	if (r->closing)
		return;
	if (r->filter_refused || ag_pgs_client_at_boundary(r->ps))
	{
		n = ag_pgproto_error(buf, sizeof(buf), "FATAL", sqlstate, msg, detail, hint);
		if (n < 0)
			n = ag_pgproto_error(buf, sizeof(buf), "FATAL", sqlstate, msg, NULL, NULL);
	}
	if (n < 0)
	{
		/* mid-message: nothing of ours may go in; just close */
		close_server(r);
		r->closing = 1;
		r->end_reason = reason;
		r->end_now = 1;
		update_events(r);
		event_active(r->cwr, EV_WRITE, 0);
		return;
	}
	start_closing(r, buf, (size_t) n, reason);
}

void
ag_relay_end(ag_relay *r, const char *sqlstate, const char *msg, const char *detail,
			 const char *hint, const char *reason)
{
	relay_fatal(r, sqlstate, msg, detail, hint, reason);
}

/* The protocol state refused something: end the relay.  Returns -1. */
static int
protocol_failed(ag_relay *r, ag_pgs_status st)
{
	const char *sqlstate;
	const char *msg;
	const char *detail;
	const char *hint;

	switch (st)
	{
		case AG_PGS_OK:
			return 0;
		case AG_PGS_NOMEM:
			return relay_ended(r, "out of memory");
		case AG_PGS_AUTH_REQUEST:

			/*
			 * PgBouncer must admit the role without a password (trust or
			 * peer on its private socket).  If it asks for one, the client
			 * would answer with its token or a hash of it: the request
			 * never reaches the client.
			 */
			ag_log(AG_LOG_ERROR, r->log_as,
				   "PgBouncer asked for a password (authentication request %u); "
				   "it must admit agent roles without one (auth_type trust on its private socket)",
				   ag_pgs_auth_request(r->ps));
			relay_fatal(r, "08006", "login failed", NULL, NULL, "login failed");
			return -1;
		case AG_PGS_FATAL:
			ag_pgs_fatal(r->ps, &sqlstate, &msg, &detail, &hint);
			ag_log(AG_LOG_WARNING, r->log_as, "closing: %s", msg);
			relay_fatal(r, sqlstate, msg, detail, hint, msg);
			return -1;
	}
	return -1;
}

static int
server_closed(ag_relay *r, const char *why)
{
	if (!ag_pgs_server_spoke(r->ps))
		relay_fatal(r, "08006", "could not connect to the pooler", NULL, NULL, why);
	else
		start_closing(r, NULL, 0, why);	/* what PgBouncer said last goes first */
	return -1;
}

/* Write the PgBouncer queue.  Returns -1 if the relay is over. */
static int
server_flush(ag_relay *r)
{
	while (r->to_server.len > 0 && !r->connecting)
	{
		ssize_t		n = send(r->sfd, r->to_server.data + r->to_server.off,
							 r->to_server.len, MSG_NOSIGNAL);

		if (n > 0)
		{
			ag_buf_consume(&r->to_server, (size_t) n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		ag_log(AG_LOG_WARNING, r->log_as, "pooler connection error: %s", strerror(errno));
		return server_closed(r, "pooler connection error");
	}
	if (r->to_server.len >= AG_RELAY_HIGH_WATER)
		r->c_paused = 1;
	return 0;
}

/*
 * Take the pattern set in force when it has changed and the filter is
 * between messages.  -1: out of memory.
 */
static int
patterns_refresh(ag_relay *r)
{
	ag_pattern_set *s;

	if (ag_pattern_set_generation(r->patterns) == ag_proxy_patterns_generation() ||
		!ag_pgf_at_boundary(r->pf))
		return 0;
	s = ag_pattern_set_current();
	if (ag_pattern_set_active(s, r->role, &r->active, &r->active_cap) < 0)
	{
		ag_pattern_set_release(s);
		return -1;
	}
	ag_pgf_set(r->pf, ag_pattern_set_compiled(s), r->active);
	ag_pattern_set_release(r->patterns);
	r->patterns = s;
	return 0;
}

/*
 * What pgstream has passed towards the client, through the content
 * patterns into the client's queue.  Returns -1 if the relay is over.
 */
static int
filter_out(ag_relay *r)
{
	ag_pgf_status st;

	if (r->from_ps.len == 0)
		return 0;
	if (patterns_refresh(r) < 0)
		return relay_ended(r, "out of memory");
	st = ag_pgf_from_server(r->pf, r->from_ps.data + r->from_ps.off, r->from_ps.len,
							&r->to_client);
	ag_buf_consume(&r->from_ps, r->from_ps.len);
	switch (st)
	{
		case AG_PGF_OK:
			return 0;
		case AG_PGF_NOMEM:
			return relay_ended(r, "out of memory");
		case AG_PGF_TOO_LARGE:
			ag_log(AG_LOG_WARNING, r->log_as, "closing: a message too large to check for content patterns");
			r->filter_refused = 1;
			relay_fatal(r, "54000", "result message too large to check for content patterns",
						"agentgate-proxy checks messages of up to 64 MB for content patterns.",
						"Read large values in parts, e.g. with substr().",
						"message too large for content patterns");
			return -1;
		case AG_PGF_SCAN_FAILED:
		case AG_PGF_BAD_MESSAGE:
			ag_log(AG_LOG_ERROR, r->log_as, "closing: content patterns could not be applied (%s)",
				   st == AG_PGF_SCAN_FAILED ? "matcher failed" : "malformed message");
			r->filter_refused = 1;
			relay_fatal(r, "XX000", "content patterns could not be applied", NULL, NULL,
						"content patterns failed");
			return -1;
	}
	return -1;
}

/*
 * n client bytes at p through the protocol state (behind any bytes held
 * back before), and what it makes sent on.  Bytes the state cannot take
 * yet (it waits for the server's answer to an earlier batch) are held,
 * and the client is not read until they have gone through.  Returns -1
 * if the relay is over.
 */
static int
client_process(ag_relay *r, const uint8_t *p, size_t n)
{
	ag_pgs_status st;
	size_t		used;

	if (r->early.len > 0)
	{
		if (ag_buf_add(&r->early, p, n) < 0)
			return relay_ended(r, "out of memory");
		st = ag_pgs_from_client(r->ps, r->early.data + r->early.off, r->early.len, &used,
								&r->to_server, &r->from_ps);
		if (st == AG_PGS_OK)
			ag_buf_consume(&r->early, used);
	}
	else
	{
		st = ag_pgs_from_client(r->ps, p, n, &used, &r->to_server, &r->from_ps);
		if (st == AG_PGS_OK && used < n && ag_buf_add(&r->early, p + used, n - used) < 0)
			return relay_ended(r, "out of memory");
	}
	if (st != AG_PGS_OK)
		return protocol_failed(r, st);
	if (filter_out(r) < 0)
		return -1;
	if (ag_pgs_pending(r->ps) >= AG_PGS_MAX_PENDING || r->early.len > 0)
		r->c_paused = 1;
	if (server_flush(r) < 0)
		return -1;
	return r->to_client.len > 0 ? client_flush(r) : 0;
}

static int	client_may_resume(const ag_relay *r);

/*
 * Read what the client has sent, until the socket is drained or the
 * queue towards PgBouncer is full.  Returns -1 if the relay is over.
 */
static int
client_read(ag_relay *r)
{
	r->read_wants_write = 0;
	if (r->early.len > 0 && !r->closing && r->sfd >= 0)
	{
		if (client_process(r, NULL, 0) < 0)
			return -1;
		if (r->early.len > 0)
			return 0;			/* still waiting for the server */
		if (client_may_resume(r))
			r->c_paused = 0;
	}
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
			if (SSL_read_ex(r->ssl, scratch + got, RELAY_CHUNK - got, &nb) == 1)
				got += nb;
			else
			{
				err = SSL_get_error(r->ssl, 0);
				break;
			}
		} while (got < RELAY_CHUNK && SSL_has_pending(r->ssl));

		if (got > 0 && client_process(r, scratch, got) < 0)
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
				return relay_ended(r, "client disconnected");
			default:
				/* an unexpected EOF is a client that just went away */
				if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
					(err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0))
				{
					ERR_clear_error();
					return relay_ended(r, "client disconnected");
				}
				return client_failed(r, err);
		}
	}
	return 0;
}

/*
 * Read what PgBouncer has sent, until its socket is drained or the queue
 * towards the client is full.  Returns -1 if the relay is over.
 */
static int
server_read(ag_relay *r)
{
	while (r->sfd >= 0 && !r->s_paused)
	{
		ssize_t		n = read(r->sfd, scratch, RELAY_CHUNK);
		ag_pgs_status st;

		if (n < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			ag_log(AG_LOG_WARNING, r->log_as, "pooler connection error: %s", strerror(errno));
			return server_closed(r, "pooler connection error");
		}
		if (n == 0)
			return server_closed(r, "pooler closed the connection");
		st = ag_pgs_from_server(r->ps, scratch, (size_t) n, &r->from_ps, &r->to_server);
		if (st != AG_PGS_OK)
			return protocol_failed(r, st);
		if (filter_out(r) < 0)
			return -1;
		/* a Sync of the proxy's after a refused carrier (shared pool) */
		if (r->to_server.len > 0 && server_flush(r) < 0)
			return -1;
		if (client_flush(r) < 0)
			return -1;
		if ((size_t) n < RELAY_CHUNK)
			return 0;			/* drained; epoll says when there is more */
	}
	return 0;
}

/* A paused client may be read again: its queues have room. */
static int
client_may_resume(const ag_relay *r)
{
	return r->c_paused && r->to_server.len < AG_RELAY_LOW_WATER &&
		ag_pgs_pending(r->ps) < AG_PGS_MAX_PENDING / 2 && !ag_pgs_client_stalled(r->ps);
}

static void
client_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_relay   *r = arg;

	if (r->end_now)
	{
		relay_ended(r, r->end_reason ? r->end_reason : "closed");
		return;
	}
	if (r->to_client.len > 0 || r->closing)
	{
		if (client_flush(r) < 0)
			return;
		/* PgBouncer's side was paused for this queue */
		if (r->s_paused && r->to_client.len < AG_RELAY_LOW_WATER)
		{
			r->s_paused = 0;
			if (r->sfd >= 0 && !r->connecting && server_read(r) < 0)
				return;
		}
	}
	if (((what & EV_READ) || r->read_wants_write || r->early.len > 0) && client_read(r) < 0)
		return;
	update_events(r);
}

static void
server_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_relay   *r = arg;

	if ((what & EV_WRITE) && r->connecting)
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		if (getsockopt(r->sfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0)
		{
			ag_log(AG_LOG_WARNING, r->log_as, "pooler connection error: %s", strerror(err));
			server_closed(r, "pooler connection error");
			return;
		}
		r->connecting = 0;
	}
	if ((what & EV_WRITE) && r->to_server.len > 0 && server_flush(r) < 0)
		return;
	if ((what & EV_READ) && server_read(r) < 0)
		return;
	/* held client bytes may go on now that the server has answered */
	if (r->early.len > 0 && !r->closing && client_read(r) < 0)
		return;
	/* the client's side was paused for this queue; TLS may hold bytes */
	if (client_may_resume(r))
	{
		r->c_paused = 0;
		if (client_read(r) < 0)
			return;
	}
	update_events(r);
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_relay   *r = arg;

	relay_ended(r, "client did not read its final message");
}

void
ag_relay_free(ag_relay *r)
{
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
	if (r->linger)
		event_free(r->linger);
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
	ag_pgs_free(r->ps);
	ag_pgf_free(r->pf);
	ag_pattern_set_release(r->patterns);
	free(r->active);
	ag_buf_free(&r->from_ps);
	ag_buf_free(&r->to_server);
	ag_buf_free(&r->to_client);
	ag_buf_free(&r->early);
	free(r);
}

ag_relay *
ag_relay_start(const ag_relay_args *a)
{
	struct sockaddr_storage ss;
	socklen_t	sslen;
	ag_relay   *r;
	ag_pgs_limits lim;
	const ag_proxy_config *cfg = ag_proxy_g.cfg;
	int			e;

	if (ag_pgbouncer_addr(&ss, &sslen) < 0)
	{
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
	{
		errno = ENOMEM;
		return NULL;
	}
	r->hooks = a->hooks;
	r->owner = a->owner;
	r->log_as = a->log_as;
	r->cfd = a->client_fd;
	snprintf(r->role, sizeof(r->role), "%s", a->role ? a->role : "");
	r->pf = ag_pgf_new(AG_PGF_MAX_MESSAGE);
	lim.max_message = (uint32_t) cfg->max_message_bytes;
	lim.max_statements = cfg->max_prepared_statements;
	lim.max_statement_bytes = (size_t) cfg->max_prepared_bytes;
	r->ps = ag_pgs_new(&lim);
	if (r->ps != NULL &&
		(a->shared ? ag_pgs_set_shared(r->ps, a->role, a->stamp, a->client_app) :
		 ag_pgs_set_stamp(r->ps, a->stamp)) < 0)
	{
		ag_pgs_free(r->ps);
		r->ps = NULL;
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
		r->crd = event_new(ag_proxy_g.base, r->cfd, EV_READ | EV_PERSIST, client_cb, r);
		r->cwr = event_new(ag_proxy_g.base, r->cfd, EV_WRITE | EV_PERSIST, client_cb, r);
		r->srd = event_new(ag_proxy_g.base, r->sfd, EV_READ | EV_PERSIST, server_cb, r);
		r->swr = event_new(ag_proxy_g.base, r->sfd, EV_WRITE | EV_PERSIST, server_cb, r);
		r->linger = evtimer_new(ag_proxy_g.base, linger_cb, r);
		errno = ENOMEM;
	}
	if (r->sfd < 0 || r->ps == NULL || r->pf == NULL || patterns_refresh(r) < 0 || !r->crd || !r->cwr || !r->srd || !r->swr || !r->linger ||
		ag_buf_add(&r->to_server, a->startup, a->startup_len) < 0 ||
		ag_buf_add(&r->to_client, a->pending_out, a->pending_out_len) < 0 ||
		ag_buf_add(&r->early, a->early_in, a->early_in_len) < 0)
	{
		e = errno;
		ag_relay_free(r);
		errno = e;
		return NULL;
	}
	/* the session is the relay's from here on (the owner keeps the socket) */
	r->ssl = a->ssl;
	SSL_set_mode(r->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_read_ahead(r->ssl, 1);

	/*
	 * Everything else runs from the loop: the startup packet goes when the
	 * socket is writable, and the client's early bytes and TLS's own
	 * buffered bytes (which the socket will not announce) are read then.
	 */
	update_events(r);
	event_active(r->crd, EV_READ, 0);
	return r;
}
