/*-------------------------------------------------------------------------
 *
 * proxy_cancel.c
 *	  Relay CancelRequest packets to PgBouncer.
 *
 * A CancelRequest carries no credentials, only the key PgBouncer handed
 * out in BackendKeyData, so it is forwarded verbatim on a new unix socket
 * connection.  PgBouncer 1.18 aborts ("bad client state") when a cancel
 * connection closes before it has finished with it (fixed in 1.19.1), so
 * the proxy keeps that socket open until PgBouncer closes it, bounded by
 * AG_CANCEL_HOLD_SECONDS.  The client's own socket may close at once.
 *
 * Each held socket is a client slot in PgBouncer (max_client_conn), and a
 * CancelRequest needs no credentials, so the proxy bounds what anyone can
 * cost PgBouncer this way: at most max_cancel_connections at once (beyond,
 * a cancel is dropped), and proxy_client.c rate-limits them per peer
 * address before they get here.
 *
 * Shared pool: PgBouncer cancels whatever its server connection runs when
 * the cancel arrives, and once a client's answer is in, that connection
 * may already serve another identity.  So proxy_client.c forwards a
 * shared client's cancel only while that client has a request
 * outstanding (ag_cancel_target finds the client by PgBouncer's key, which
 * the relay keeps from BackendKeyData); a late one is dropped.  What
 * remains is PgBouncer's own window between its reading the answer and
 * the cancel reaching the server.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <event2/buffer.h>

typedef struct cancel_conn
{
	struct bufferevent *bev;
	struct event *timer;
} cancel_conn;

int
ag_pgbouncer_addr(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *sun = (struct sockaddr_un *) ss;
	int			n;

	memset(ss, 0, sizeof(*ss));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d",
				 ag_proxy_g.cfg->pgbouncer_socket_dir, ag_proxy_g.cfg->pgbouncer_port);
	if (n < 0 || (size_t) n >= sizeof(sun->sun_path))
		return -1;
	*len = (socklen_t) sizeof(*sun);
	return 0;
}

static void
cancel_free(cancel_conn *cc)
{
	bufferevent_free(cc->bev);
	event_free(cc->timer);
	free(cc);
	ag_proxy_g.ncancels--;
}

static void
cancel_read_cb(struct bufferevent *bev, void *arg)
{
	/* PgBouncer sends nothing here; discard whatever comes */
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
cancel_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_ERROR)
		ag_log(AG_LOG_WARNING, NULL, "cancel request: pooler connection error: %s",
			   evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		cancel_free(arg);
}

static void
cancel_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	ag_log(AG_LOG_WARNING, NULL, "cancel request: pooler kept the connection open for %d s",
		   AG_CANCEL_HOLD_SECONDS);
	cancel_free(arg);
}

/*
 * The connection a CancelRequest (16 bytes: length, code, then PgBouncer's
 * 8-byte key) names, among relayed ones; NULL if none.
 */
ag_client *
ag_cancel_target(const uint8_t *packet, size_t len)
{
	ag_client  *c;

	if (len != 16)
		return NULL;
	for (c = ag_proxy_g.clients; c; c = c->next)
		if (c->state == AG_CS_RELAY && ag_relay_cancel_matches(c->relay, packet + 8, 0))
			return c;
	return NULL;
}

/* 0 when the cancel is on its way to PgBouncer, -1 when it was dropped. */
int
ag_cancel_forward(const uint8_t *packet, size_t len)
{
	cancel_conn *cc;
	struct sockaddr_storage ss;
	socklen_t	sslen;
	struct timeval tv = {AG_CANCEL_HOLD_SECONDS, 0};

	if (ag_proxy_g.ncancels >= ag_proxy_g.cfg->max_cancel_connections)
		return -1;
	if (ag_pgbouncer_addr(&ss, &sslen) < 0)
		return -1;
	cc = calloc(1, sizeof(*cc));
	if (cc == NULL)
		return -1;
	cc->bev = bufferevent_socket_new(ag_proxy_g.base, -1, BEV_OPT_CLOSE_ON_FREE);
	cc->timer = evtimer_new(ag_proxy_g.base, cancel_timeout_cb, cc);
	if (cc->bev == NULL || cc->timer == NULL ||
		bufferevent_socket_connect(cc->bev, (struct sockaddr *) &ss, (int) sslen) < 0)
	{
		ag_log(AG_LOG_WARNING, NULL, "cancel request: could not connect to the pooler");
		if (cc->bev)
			bufferevent_free(cc->bev);
		if (cc->timer)
			event_free(cc->timer);
		free(cc);
		return -1;
	}
	ag_proxy_g.ncancels++;
	bufferevent_setcb(cc->bev, cancel_read_cb, NULL, cancel_event_cb, cc);
	bufferevent_write(cc->bev, packet, len);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
	evtimer_add(cc->timer, &tv);
	return 0;
}
