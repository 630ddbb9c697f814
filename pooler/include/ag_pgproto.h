/*-------------------------------------------------------------------------
 *
 * ag_pgproto.h
 *	  The few pieces of the PostgreSQL v3 wire protocol the proxy needs:
 *	  parsing and filtering the client's startup packet, building the one
 *	  sent to PgBouncer, and building ErrorResponse messages.  The relayed
 *	  stream itself is followed in pgstream.c.
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

/*
 * The shared pool (proxy setting shared_pool): every agent logs into
 * PgBouncer as AG_PGPROTO_POOL_ROLE with application_name
 * AG_PGPROTO_POOL_APPNAME (one value for all, so PgBouncer never SETs it
 * between clients); the identity travels in each window's carrier
 * (ag_pgstream.h).  Database and settings as in ag_pgproto_build_startup.
 */
#define AG_PGPROTO_POOL_ROLE	"agentgate_pool"
#define AG_PGPROTO_POOL_APPNAME "agentgate"

extern int	ag_pgproto_build_shared_startup(const ag_pg_client_params *p,
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
