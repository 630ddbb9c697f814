/*-------------------------------------------------------------------------
 *
 * ag_pgstream.h
 *	  The protocol of one relayed connection, followed in both directions,
 *	  and the client's named prepared statements.
 *
 * PgBouncer 1.18's transaction pool gives a client whichever server
 * connection is free for each transaction and knows nothing of prepared
 * statements, so a named statement made on one server connection is
 * missing (or another client's) on the next.  The proxy keeps each
 * client's named statements itself and the server only ever sees unnamed
 * ones:
 *
 *	  Parse(name)		 stored, and sent as Parse("") so that the server
 *						 checks it; its ParseComplete answers the client's
 *	  Bind(name)		 Parse("", stored) + Bind("") (that ParseComplete is
 *						 dropped)
 *	  Describe(S, name)	 Parse("", stored) + Describe(S, "")
 *	  Close(S, name)	 answered here with CloseComplete, in order
 *	  an unknown name, a name already used, a limit reached
 *						 an ErrorResponse of ours, placed where the server's
 *						 answer would be; see below
 *
 * Every message the client sends that the server answers puts an entry
 * on a queue of expected answers; the server's messages are matched to
 * the entry at the head, and the proxy's own answers (CloseComplete) are
 * entries too, so they reach the client in the order the client asked.
 *
 * Errors the proxy finds must look like the server's: the server skips
 * every message until Sync after an error, and an error inside a
 * transaction block aborts it.  So the proxy does not answer them alone:
 * it sends the server a Parse that cannot parse, drops the server's
 * syntax error and sends its own in its place.  The server then skips
 * and aborts exactly as for an error of its own.  When the server reports
 * an error, the entries queued up to the client's next Sync are skipped
 * as the server skips the messages, and what they did to the statement
 * table is undone, newest first.
 *
 * Everything else passes unchanged, large messages as they arrive (a
 * message is buffered whole only when it must be rewritten: a named
 * Parse, a Describe, a Close).  FunctionCall is refused.
 *
 * Shared pool (ag_pgs_set_shared): every agent of a database logs into
 * PgBouncer as one role, and the identity travels per transaction window
 * (from the first message after an idle ReadyForQuery to the next idle
 * one) in a carrier the proxy puts in front of the window's first
 * message bound for the server:
 *
 *	  Parse("", "CALL agentgate.assume($1, $2)"), Bind("", "", text
 *	  params role and stamp), Execute("", 0)
 *
 * with no Sync, so PgBouncer keeps the same server connection and no
 * round trip is added.  Only when nothing of the client's is outstanding
 * and the last ReadyForQuery said idle (or none came yet): never inside
 * a transaction block.  A group the client pipelines behind an
 * unanswered one waits until those answers are in (they say whether it
 * needs a carrier, and PgBouncer may give it another server connection
 * then).  The carrier's ParseComplete, BindComplete and CommandComplete are dropped;
 * its ErrorResponse goes to the client.  The server then skips messages
 * until Sync: an extended group's own Sync ends that, and for a simple
 * Query the proxy sends a Sync itself, whose ReadyForQuery ends the
 * client's Query.  So that nothing else lands among the skipped
 * messages, any next message waits until the carrier before a Query has
 * been answered.  The carrier takes the server's unnamed
 * statement, so a client's Bind or Describe of the unnamed statement
 * before its own Parse in the window is refused, as for a replayed named
 * statement.  ParameterStatus(application_name) with the pool's value
 * reaches the client as the client's own application_name.
 *
 * Nothing here does I/O: bytes go in, bytes for each side come out in
 * ag_buf queues, so the whole module is unit tested and fuzzed alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_PGSTREAM_H
#define AG_PGSTREAM_H

#include <stddef.h>
#include <stdint.h>

/* A byte queue: bytes from data + off, len of them. */
typedef struct ag_buf
{
	uint8_t    *data;
	size_t		off;
	size_t		len;
	size_t		cap;
} ag_buf;

extern int	ag_buf_add(ag_buf *b, const void *p, size_t n);
extern void ag_buf_consume(ag_buf *b, size_t n);
extern void ag_buf_free(ag_buf *b);
/*
 * Give an empty queue's memory back (the next add allocates again);
 * returns how many bytes.
 */
extern size_t ag_buf_trim(ag_buf *b);

typedef struct ag_pgs_limits
{
	uint32_t	max_message;	/* largest client message (length field) */
	int			max_statements; /* named statements per connection */
	size_t		max_statement_bytes;	/* their names and texts, in all */
} ag_pgs_limits;

typedef enum ag_pgs_status
{
	AG_PGS_OK = 0,
	AG_PGS_FATAL,				/* close with the error in fatal_* (see below) */
	AG_PGS_AUTH_REQUEST,		/* PgBouncer asked for a password */
	AG_PGS_NOMEM
} ag_pgs_status;

/*
 * Expected answers at which a client is no longer read (backpressure; it
 * is read again below half of this).  Each costs about 40 bytes.
 */
#define AG_PGS_MAX_PENDING		16384

/* Longest name field read in Bind, Describe and Close. */
#define AG_PGS_MAX_NAME_FIELD	2048

typedef struct ag_pgstream ag_pgstream;

extern ag_pgstream *ag_pgs_new(const ag_pgs_limits *lim);
extern void ag_pgs_free(ag_pgstream *s);

/*
 * Bytes from the client: what goes to the server is appended to
 * to_server, the proxy's own answers to to_client.  *consumed is less
 * than len when the stream has stalled (ag_pgs_client_stalled): a
 * message needs the statement table as an earlier batch leaves it, and
 * the server has not answered that batch yet.  The caller keeps the rest
 * and presents it again (len 0 is fine) after server bytes have come.
 * On AG_PGS_FATAL the connection must end with the error named by
 * ag_pgs_fatal() (bytes of the refused message have not been passed).
 */
extern ag_pgs_status ag_pgs_from_client(ag_pgstream *s, const uint8_t *buf, size_t len,
										size_t *consumed, ag_buf *to_server,
										ag_buf *to_client);
extern int	ag_pgs_client_stalled(const ag_pgstream *s);

/*
 * Bytes from the server: likewise, into to_client; to_server gets what
 * the proxy must send the server in answer (the Sync after a refused
 * carrier, in shared mode).
 */
extern ag_pgs_status ag_pgs_from_server(ag_pgstream *s, const uint8_t *buf, size_t len,
										ag_buf *to_client, ag_buf *to_server);

/* The error that ended the stream: SQLSTATE, message, detail, hint. */
extern void ag_pgs_fatal(const ag_pgstream *s, const char **sqlstate, const char **msg,
						 const char **detail, const char **hint);

/* The client's stream is between messages (a message of ours may go in). */
extern int	ag_pgs_client_at_boundary(const ag_pgstream *s);

/* Something has come from the server. */
extern int	ag_pgs_server_spoke(const ag_pgstream *s);

/* A ReadyForQuery has come from the server (PgBouncer's login is over). */
extern int	ag_pgs_ready_seen(const ag_pgstream *s);

/*
 * The client's session stamp (NULL: none): from then on a ParameterStatus
 * for application_name that does not end with it (the client set another
 * session's stamp) ends the stream with a FATAL 42501.  -1 if too long.
 */
extern int	ag_pgs_set_stamp(ag_pgstream *s, const char *stamp);

/* The procedure the carrier calls (shared mode). */
#define AG_PGS_CARRIER_QUERY	"CALL agentgate.assume($1, $2)"

/*
 * Shared pool: from now on a carrier of (role, stamp) goes in front of
 * each window (see above), there is no stamp check on ParameterStatus,
 * and a ParameterStatus for application_name with AG_PGPROTO_POOL_APPNAME
 * reaches the client with client_app instead ("" for none).  -1 if a
 * value is too long or out of memory.
 */
extern int	ag_pgs_set_shared(ag_pgstream *s, const char *role, const char *stamp,
							  const char *client_app);

/*
 * Something the client asked has not been answered in full (the login
 * aside): a cancel may concern this connection only then.
 */
extern int	ag_pgs_outstanding(const ag_pgstream *s);

/* PgBouncer's BackendKeyData for this client (8 bytes): 1 if seen. */
extern int	ag_pgs_cancel_key(const ag_pgstream *s, uint8_t key[8]);

/*
 * Between transactions: every message has had its answer, the last
 * ReadyForQuery said idle, and no message is half-way in either direction.
 */
extern int	ag_pgs_idle(const ag_pgstream *s);

/* Answers still expected (for backpressure). */
extern size_t ag_pgs_pending(const ag_pgstream *s);

/* The refused authentication request's code (AG_PGS_AUTH_REQUEST). */
extern uint32_t ag_pgs_auth_request(const ag_pgstream *s);

/* Named statements held, and their bytes (for tests and logs). */
extern int	ag_pgs_statements(const ag_pgstream *s, size_t *bytes);

#endif							/* AG_PGSTREAM_H */
