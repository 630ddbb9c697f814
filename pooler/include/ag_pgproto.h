/*-------------------------------------------------------------------------
 *
 * ag_pgproto.h
 *	  The few pieces of the PostgreSQL v3 wire protocol the proxy needs:
 *	  parsing and filtering the client's startup packet, building the one
 *	  sent to PgBouncer, building ErrorResponse messages, and checking the
 *	  framing of client messages.
 *
 * Nothing here does I/O or allocates: every function works on caller
 * buffers, so the whole module can be unit tested and fuzzed on its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_PGPROTO_H
#define AG_PGPROTO_H

#include <stddef.h>
#include <stdint.h>

/* Protocol codes of the first packet. */
#define AG_PG_PROTO_V3			196608		/* 3.0 */
#define AG_PG_CANCEL_CODE		80877102
#define AG_PG_SSL_CODE			80877103
#define AG_PG_GSSENC_CODE		80877104

#define AG_PGPROTO_MAX_STARTUP	10000	/* hard cap on a startup packet */
#define AG_PGPROTO_MAX_PARAMS	64
#define AG_PGPROTO_NAMELEN		63		/* NAMEDATALEN - 1 */
#define AG_PGPROTO_MAX_SETTING	64		/* client_encoding, DateStyle... */
#define AG_PGPROTO_APPNAME_KEEP 20		/* bytes of the client's app name */
#define AG_PGPROTO_MAX_STAMP	40
#define AG_PGPROTO_ERRLEN		160

typedef enum ag_pg_first_kind
{
	AG_PG_STARTUP = 1,			/* StartupMessage, protocol 3.x */
	AG_PG_SSLREQUEST,
	AG_PG_GSSENCREQUEST,
	AG_PG_CANCELREQUEST
} ag_pg_first_kind;

typedef struct ag_pg_param
{
	const char *name;			/* point into ag_pg_startup.storage */
	const char *value;
} ag_pg_param;

/* A parsed first packet. */
typedef struct ag_pg_startup
{
	ag_pg_first_kind kind;
	int			major;
	int			minor;
	uint32_t	cancel_pid;		/* CancelRequest only */
	uint32_t	cancel_key;
	int			nparams;
	ag_pg_param params[AG_PGPROTO_MAX_PARAMS];
	char		storage[AG_PGPROTO_MAX_STARTUP];
} ag_pg_startup;

/*
 * Parse a complete first packet: buf holds len bytes, starting with the
 * packet's own int32 length (which must equal len).  Returns 0 and fills
 * *out, or -1 with a one-line reason in err (AG_PGPROTO_ERRLEN bytes).
 */
extern int	ag_pgproto_parse_startup(const uint8_t *buf, size_t len,
									 ag_pg_startup *out, char *err);

/*
 * The parameters the proxy accepts, once validated.  Strings point into
 * the ag_pg_startup they came from (NULL when not sent).
 */
typedef struct ag_pg_client_params
{
	const char *user;			/* the client's user: logged, never used */
	const char *database;
	const char *application_name;
	const char *client_encoding;
	const char *datestyle;
	const char *timezone;
} ag_pg_client_params;

/*
 * Apply the proxy's policy to a parsed StartupMessage: refuse options,
 * replication and every unknown parameter (bad_param names it), drop
 * extra_float_digits, validate sizes and characters.  Returns 0, or -1
 * with a reason in err and, when a parameter is to blame, its name copied
 * into bad_param (AG_PGPROTO_NAMELEN + 1 bytes).
 */
extern int	ag_pgproto_filter_startup(const ag_pg_startup *in,
									  ag_pg_client_params *out,
									  char *bad_param, char *err);

/*
 * 1 if database names PgBouncer's admin console ("pgbouncer", in any case:
 * a variant is refused too, whatever PgBouncer would make of it).
 */
extern int	ag_pgproto_reserved_database(const char *database);

/*
 * Build the StartupMessage (protocol 3.0) for PgBouncer: user = role,
 * database as filtered, application_name = "<client app> <stamp>" with the
 * client's name cut to printable ASCII without spaces, at most
 * AG_PGPROTO_APPNAME_KEEP bytes.  Returns the packet length, or -1 if it
 * does not fit in bufsize or role/stamp are not acceptable.
 */
extern int	ag_pgproto_build_startup(const ag_pg_client_params *p,
									 const char *role, const char *stamp,
									 uint8_t *buf, size_t bufsize);

/* The application_name sent to PgBouncer (exposed for tests). */
extern void ag_pgproto_app_name(const char *client_app, const char *stamp,
								char *out, size_t outsize);

/*
 * ErrorResponse: severity ("FATAL", "ERROR"), SQLSTATE, message, optional
 * detail and hint.  Control characters in texts are replaced by '?'.
 * Returns the message length, or -1 if bufsize is too small.
 */
extern int	ag_pgproto_error(uint8_t *buf, size_t bufsize,
							 const char *severity, const char *sqlstate,
							 const char *msg, const char *detail,
							 const char *hint);

/* What a client message header (type byte + int32 length) says. */
typedef enum ag_pg_frame_status
{
	AG_FRAME_OK = 0,
	AG_FRAME_BAD_LENGTH,		/* < 4 or > the cap */
	AG_FRAME_FUNCTION_CALL,		/* 'F': never forwarded */
} ag_pg_frame_status;

/* hdr holds 5 bytes; *len receives the int32 length field. */
extern ag_pg_frame_status ag_pgproto_check_frame(const uint8_t *hdr,
												 uint32_t max_len,
												 uint32_t *len);

/*
 * Client-to-server stream scanner.  The relay reads bytes in chunks of any
 * size; this says how many of them may be forwarded.  A message header
 * (type byte + int32 length) is checked before any byte of its message
 * passes, so a chunk may end with up to 4 bytes of an incomplete header:
 * the caller keeps those and presents them again, in front of the next
 * chunk.  Message bodies pass as they arrive.
 */
typedef struct ag_pg_client_scan
{
	uint32_t	left;			/* bytes of the current message still to pass */
	uint64_t	syncs;			/* Query and Sync messages passed */
} ag_pg_client_scan;

/*
 * Scan len bytes.  Returns AG_FRAME_OK with *pass = the bytes that may be
 * forwarded (len - *pass < 5 are an incomplete header), or the refusal,
 * with *pass = the bytes before the refused message.
 */
extern ag_pg_frame_status ag_pgproto_scan_client(ag_pg_client_scan *st,
												 const uint8_t *buf, size_t len,
												 uint32_t max_len, size_t *pass);

/*
 * Server-to-client stream scanner: bytes pass untouched; the framing is
 * followed only to know where messages end and what the last
 * ReadyForQuery said.  Until PgBouncer's AuthenticationOk has passed, an
 * Authentication message is held back (*pass stops before it) until its
 * 9 bytes are here, and a request for a password is refused before any
 * of it passes.
 */
typedef struct ag_pg_server_scan
{
	uint8_t		hdr[5];			/* header of the current message */
	int			hdrlen;			/* 0 at a message boundary */
	uint32_t	left;			/* body bytes still to pass */
	char		last;			/* type of the last complete message */
	uint8_t		status;			/* of the last ReadyForQuery: I, T, E */
	uint64_t	ready;			/* ReadyForQuery messages passed */
	int			authed;			/* AuthenticationOk has passed */
	uint32_t	auth_request;	/* the refused request's code */

	/*
	 * The client's own session stamp (NULL: not checked).  A ParameterStatus
	 * for application_name whose value does not end with " <stamp>" (or is
	 * not the stamp alone) means the client installed another value than
	 * the one agentgate keeps for it: another connection's stamp.
	 */
	const char *stamp;
	char		ps_name[24];	/* start of a ParameterStatus's name */
	uint32_t	ps_namelen;		/* bytes of the name seen (ps_named: all) */
	int			ps_named;		/* the name's terminator has passed */
	char		ps_tail[64];	/* last bytes of its value */
	uint32_t	ps_taillen;
} ag_pg_server_scan;

typedef enum ag_pg_server_status
{
	AG_SERVER_OK = 0,
	AG_SERVER_BAD_LENGTH,		/* a length below 4 */
	AG_SERVER_AUTH_REQUEST,		/* PgBouncer asked for a password */
	AG_SERVER_FOREIGN_STAMP,	/* application_name lost the client's stamp;
								 * *pass ends after that ParameterStatus */
} ag_pg_server_status;

/*
 * Scan len bytes.  Returns AG_SERVER_OK with *pass = the bytes that may
 * be forwarded (the rest, fewer than 9, are an Authentication message to
 * present again with more bytes), or a refusal.
 */
extern ag_pg_server_status ag_pgproto_scan_server(ag_pg_server_scan *st,
												  const uint8_t *buf, size_t len,
												  size_t *pass);

/* At a message boundary of the server's stream. */
static inline int
ag_pgproto_server_at_boundary(const ag_pg_server_scan *st)
{
	return st->hdrlen == 0 && st->left == 0;
}

/* Big-endian helpers. */
static inline uint32_t
ag_pg_get32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static inline void
ag_pg_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

#endif							/* AG_PGPROTO_H */
