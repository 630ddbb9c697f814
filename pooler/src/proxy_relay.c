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
 * middle of a server message.
 *
 * Backpressure: a side stops reading while the other side's output buffer
 * holds more than AG_RELAY_HIGH_WATER bytes, and resumes below
 * AG_RELAY_LOW_WATER.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"

#include <string.h>

#include <event2/buffer.h>

static int	c2s_pump(ag_client *c);
static int	s2c_pump(ag_client *c);

int
ag_relay_at_boundary(const ag_client *c)
{
	return c->s2c_hdrlen == 0 && c->s2c_left == 0;
}

/*
 * Between transactions: every Query and Sync the client sent has had its
 * ReadyForQuery, the last one said idle, and nothing is half-sent.
 */
int
ag_relay_idle(const ag_client *c)
{
	return ag_relay_at_boundary(c) && c->s2c_ready == c->c2s_syncs &&
		c->s2c_status == 'I' && c->c2s_left == 0 &&
		evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0 &&
		(c->sbev == NULL || evbuffer_get_length(bufferevent_get_output(c->sbev)) == 0);
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

/* Returns -1 if c has been freed. */
static int
c2s_pump(ag_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	struct evbuffer *out = bufferevent_get_output(c->sbev);
	size_t		avail;

	while ((avail = evbuffer_get_length(in)) > 0)
	{
		if (c->c2s_left == 0)
		{
			uint8_t		hdr[5];
			uint32_t	len;

			if (avail < 5)
				break;
			evbuffer_copyout(in, hdr, 5);
			switch (ag_pgproto_check_frame(hdr, (uint32_t) ag_proxy_g.cfg->max_message_bytes, &len))
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
			c->c2s_left = len + 1;
			if (hdr[0] == 'Q' || hdr[0] == 'S')
				c->c2s_syncs++;
		}
		else
		{
			size_t		n = avail < c->c2s_left ? avail : c->c2s_left;

			evbuffer_remove_buffer(in, out, n);
			c->c2s_left -= (uint32_t) n;
		}
	}
	if (evbuffer_get_length(out) > AG_RELAY_HIGH_WATER)
		bufferevent_disable(c->cbev, EV_READ);
	return 0;
}

static int
s2c_pump(ag_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->sbev);
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	size_t		avail;

	while ((avail = evbuffer_get_length(in)) > 0)
	{
		/*
		 * PgBouncer must admit the role without a password (trust or peer on
		 * its private socket).  If it asks for one, the client would answer
		 * with its token or a hash of it: refuse before any of that request
		 * reaches the client.
		 */
		if (!c->pooler_authed && c->s2c_hdrlen == 0)
		{
			uint8_t		m[9];

			evbuffer_copyout(in, m, avail < 9 ? avail : 9);
			if (m[0] == 'R')
			{
				if (avail < 9)
					break;
				if (ag_pg_get32(m + 5) != 0)
				{
					ag_log(AG_LOG_ERROR, c, "PgBouncer asked for a password (authentication request %u); "
						   "it must admit agent roles without one (auth_type trust on its private socket)",
						   ag_pg_get32(m + 5));
					ag_client_fatal(c, "08006", "login failed", NULL, NULL);
					return -1;
				}
				c->pooler_authed = 1;
			}
		}
		if (c->s2c_hdrlen < 5)
		{
			size_t		n = 5 - (size_t) c->s2c_hdrlen;

			if (n > avail)
				n = avail;
			evbuffer_remove(in, c->s2c_hdr + c->s2c_hdrlen, n);
			evbuffer_add(out, c->s2c_hdr + c->s2c_hdrlen, n);
			c->s2c_hdrlen += (int) n;
			if (c->s2c_hdrlen < 5)
				break;
			c->s2c_left = ag_pg_get32(c->s2c_hdr + 1);
			if (c->s2c_left < 4)
			{
				ag_client_free(c, "invalid message length from the pooler");
				return -1;
			}
			c->s2c_left -= 4;
		}
		else
		{
			size_t		n = avail < c->s2c_left ? avail : c->s2c_left;

			/* ReadyForQuery's one byte says idle, in transaction, failed */
			if (c->s2c_hdr[0] == 'Z' && n > 0)
				evbuffer_copyout(in, &c->s2c_status, 1);
			evbuffer_remove_buffer(in, out, n);
			c->s2c_left -= (uint32_t) n;
		}
		if (c->s2c_hdrlen == 5 && c->s2c_left == 0)
		{
			c->s2c_last = (char) c->s2c_hdr[0];
			if (c->s2c_last == 'Z')
				c->s2c_ready++;
			c->s2c_hdrlen = 0;
		}
	}
	if (evbuffer_get_length(out) > AG_RELAY_HIGH_WATER)
		bufferevent_disable(c->sbev, EV_READ);
	return 0;
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	(void) c2s_pump(arg);
}

static void
server_read_cb(struct bufferevent *bev, void *arg)
{
	(void) s2c_pump(arg);
}

/* The client's output drained below the low-water mark. */
static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	ag_client  *c = arg;

	if (c->sbev && !(bufferevent_get_enabled(c->sbev) & EV_READ))
	{
		bufferevent_enable(c->sbev, EV_READ);
		(void) s2c_pump(c);
	}
}

static void
server_write_cb(struct bufferevent *bev, void *arg)
{
	ag_client  *c = arg;

	if (!(bufferevent_get_enabled(c->cbev) & EV_READ))
	{
		bufferevent_enable(c->cbev, EV_READ);
		(void) c2s_pump(c);
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	ag_client  *c = arg;

	if (what & BEV_EVENT_EOF)
		ag_client_free(c, "client disconnected");
	else if (what & BEV_EVENT_ERROR)
		ag_client_free(c, "client connection error");
}

static void
server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	ag_client  *c = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (what & BEV_EVENT_ERROR)
		ag_log(AG_LOG_WARNING, c, "pooler connection error: %s",
			   evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	/* pass on what PgBouncer said last (often an ErrorResponse), then close */
	if (s2c_pump(c) < 0)
		return;
	if (c->s2c_last == 0 && ag_relay_at_boundary(c))
		ag_client_fatal(c, "08006", "could not connect to the pooler", NULL, NULL);
	else
		ag_client_finish(c, (what & BEV_EVENT_EOF) ? "pooler closed the connection"
						 : "pooler connection error");
}

void
ag_relay_start(ag_client *c)
{
	c->c2s_syncs = 1;			/* the ReadyForQuery that ends the login */
	bufferevent_setcb(c->cbev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setcb(c->sbev, server_read_cb, server_write_cb, server_event_cb, c);
	bufferevent_setwatermark(c->cbev, EV_WRITE, AG_RELAY_LOW_WATER, 0);
	bufferevent_setwatermark(c->sbev, EV_WRITE, AG_RELAY_LOW_WATER, 0);
	bufferevent_setwatermark(c->cbev, EV_READ, 0, 0);
	bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
	bufferevent_enable(c->sbev, EV_READ | EV_WRITE);
	/* anything the client pipelined after its password */
	(void) c2s_pump(c);
}
