/*-------------------------------------------------------------------------
 *
 * pgproto.c
 *	  Startup packet parsing and filtering, startup packet building and
 *	  ErrorResponse building (the relayed stream is pgstream.c's).
 *
 * The client is untrusted until its token is verified, and even then it
 * chooses nothing that reaches PgBouncer except the database name, a
 * sanitised prefix of its application_name and three validated settings:
 * the user name PgBouncer sees is always the role agentgate.login()
 * returned.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_pgproto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void
set_err(char *err, const char *msg)
{
	if (err)
		snprintf(err, AG_PGPROTO_ERRLEN, "%s", msg);
}

int
ag_pgproto_parse_startup(const uint8_t *buf, size_t len, ag_pg_startup *out,
						 char *err)
{
	uint32_t	code;
	size_t		n;
	size_t		pos;
	int			terminated = 0;

	out->nparams = 0;
	out->major = out->minor = 0;
	out->cancel_pid = out->cancel_key = 0;

	if (len < 8)
	{
		set_err(err, "startup packet too short");
		return -1;
	}
	if (len > AG_PGPROTO_MAX_STARTUP)
	{
		set_err(err, "startup packet too long");
		return -1;
	}
	if (ag_pg_get32(buf) != len)
	{
		set_err(err, "startup packet length mismatch");
		return -1;
	}
	code = ag_pg_get32(buf + 4);

	if (code == AG_PG_SSL_CODE || code == AG_PG_GSSENC_CODE)
	{
		if (len != 8)
		{
			set_err(err, "invalid length of encryption request");
			return -1;
		}
		out->kind = (code == AG_PG_SSL_CODE) ? AG_PG_SSLREQUEST : AG_PG_GSSENCREQUEST;
		return 0;
	}
	if (code == AG_PG_CANCEL_CODE)
	{
		if (len != 16)
		{
			set_err(err, "invalid length of cancel request");
			return -1;
		}
		out->kind = AG_PG_CANCELREQUEST;
		out->cancel_pid = ag_pg_get32(buf + 8);
		out->cancel_key = ag_pg_get32(buf + 12);
		return 0;
	}

	out->kind = AG_PG_STARTUP;
	out->major = (int) (code >> 16);
	out->minor = (int) (code & 0xffff);
	if (out->major != 3)
	{
		if (err)
			snprintf(err, AG_PGPROTO_ERRLEN,
					 "unsupported frontend protocol %d.%d: server supports 3.0",
					 out->major, out->minor);
		return -1;
	}

	/* name\0value\0 ... \0, copied so that the strings stay NUL-terminated */
	n = len - 8;
	memcpy(out->storage, buf + 8, n);
	pos = 0;
	while (pos < n)
	{
		const char *name = out->storage + pos;
		const char *nend;
		const char *vend;
		int			i;

		if (*name == '\0')
		{
			terminated = 1;
			pos++;
			break;
		}
		nend = memchr(name, '\0', n - pos);
		if (nend == NULL)
			break;
		pos = (size_t) (nend - out->storage) + 1;
		if (pos >= n)
			break;
		vend = memchr(out->storage + pos, '\0', n - pos);
		if (vend == NULL)
			break;
		if (out->nparams >= AG_PGPROTO_MAX_PARAMS)
		{
			set_err(err, "too many startup parameters");
			return -1;
		}
		for (i = 0; i < out->nparams; i++)
		{
			if (strcasecmp(out->params[i].name, name) == 0)
			{
				set_err(err, "duplicate startup parameter");
				return -1;
			}
		}
		out->params[out->nparams].name = name;
		out->params[out->nparams].value = out->storage + pos;
		out->nparams++;
		pos = (size_t) (vend - out->storage) + 1;
	}
	if (!terminated || pos != n)
	{
		set_err(err, "invalid startup packet layout: expected terminator as last byte");
		return -1;
	}
	return 0;
}

/* Printable ASCII (space included), 1..maxlen bytes. */
static int
valid_text(const char *s, size_t maxlen)
{
	size_t		n = strlen(s);

	if (n == 0 || n > maxlen)
		return 0;
	for (; *s; s++)
	{
		if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
			return 0;
	}
	return 1;
}

/* Names PostgreSQL would accept: no control characters, <= 63 bytes. */
static int
valid_name(const char *s)
{
	size_t		n = strlen(s);

	if (n == 0 || n > AG_PGPROTO_NAMELEN)
		return 0;
	for (; *s; s++)
	{
		if ((unsigned char) *s < 0x20 || (unsigned char) *s == 0x7f)
			return 0;
	}
	return 1;
}

static void
copy_param_name(char *dst, const char *name)
{
	size_t		i;

	if (dst == NULL)
		return;
	/* the name goes into an error message: keep it printable and short */
	for (i = 0; name[i] && i < AG_PGPROTO_NAMELEN; i++)
	{
		unsigned char c = (unsigned char) name[i];

		dst[i] = (c < 0x20 || c > 0x7e) ? '?' : (char) c;
	}
	dst[i] = '\0';
}

int
ag_pgproto_filter_startup(const ag_pg_startup *in, ag_pg_client_params *out,
						  char *bad_param, char *err)
{
	int			i;

	memset(out, 0, sizeof(*out));
	if (bad_param)
		bad_param[0] = '\0';
	if (in->kind != AG_PG_STARTUP)
	{
		set_err(err, "expected a startup message");
		return -1;
	}

	for (i = 0; i < in->nparams; i++)
	{
		const char *name = in->params[i].name;
		const char *value = in->params[i].value;
		const char **slot = NULL;
		int			setting = 0;

		if (strcmp(name, "user") == 0)
			slot = &out->user;
		else if (strcmp(name, "database") == 0)
			slot = &out->database;
		else if (strcasecmp(name, "application_name") == 0)
			slot = &out->application_name;
		else if (strcasecmp(name, "client_encoding") == 0)
			slot = &out->client_encoding, setting = 1;
		else if (strcasecmp(name, "DateStyle") == 0)
			slot = &out->datestyle, setting = 1;
		else if (strcasecmp(name, "TimeZone") == 0)
			slot = &out->timezone, setting = 1;
		else if (strcasecmp(name, "extra_float_digits") == 0)
			continue;			/* PgBouncer ignores it too */
		else
		{
			/* options, replication, _pq_.*, any GUC: refused by name */
			copy_param_name(bad_param, name);
			set_err(err, "unsupported startup parameter");
			return -1;
		}

		if (setting ? !valid_text(value, AG_PGPROTO_MAX_SETTING)
			: (slot == &out->application_name
			   ? strlen(value) > AG_PGPROTO_NAMELEN
			   : !valid_name(value)))
		{
			copy_param_name(bad_param, name);
			set_err(err, "invalid value for startup parameter");
			return -1;
		}
		*slot = value;
	}

	/* like PostgreSQL: the database defaults to the user name sent */
	if (out->database == NULL || out->database[0] == '\0')
		out->database = out->user;
	if (out->database == NULL)
	{
		set_err(err, "no database name in startup packet");
		return -1;
	}
	return 0;
}

void
ag_pgproto_app_name(const char *client_app, const char *stamp,
					char *out, size_t outsize)
{
	char		prefix[AG_PGPROTO_APPNAME_KEEP + 1];
	size_t		n = 0;

	if (client_app)
	{
		for (; *client_app && n < AG_PGPROTO_APPNAME_KEEP; client_app++)
		{
			unsigned char c = (unsigned char) *client_app;

			if (c > 0x20 && c < 0x7f)
				prefix[n++] = (char) c;
		}
	}
	prefix[n] = '\0';
	if (n > 0)
		snprintf(out, outsize, "%s %s", prefix, stamp);
	else
		snprintf(out, outsize, "%s", stamp);
}

/* Append name\0value\0; returns the new position or -1. */
static long
put_pair(uint8_t *buf, size_t bufsize, size_t pos, const char *name,
		 const char *value)
{
	size_t		nl = strlen(name) + 1;
	size_t		vl = strlen(value) + 1;

	if (pos + nl + vl + 1 > bufsize)	/* keep room for the terminator */
		return -1;
	memcpy(buf + pos, name, nl);
	memcpy(buf + pos + nl, value, vl);
	return (long) (pos + nl + vl);
}

/* The packet: user, database, application_name, the client's settings. */
static int
build_startup(const ag_pg_client_params *p, const char *user, const char *app,
			  uint8_t *buf, size_t bufsize)
{
	const char *names[3] = {"client_encoding", "DateStyle", "TimeZone"};
	const char *values[3];
	long		pos;
	int			i;

	if (bufsize < 9)
		return -1;
	ag_pg_put32(buf + 4, AG_PG_PROTO_V3);
	pos = 8;
	if ((pos = put_pair(buf, bufsize, (size_t) pos, "user", user)) < 0 ||
		(pos = put_pair(buf, bufsize, (size_t) pos, "database", p->database)) < 0 ||
		(pos = put_pair(buf, bufsize, (size_t) pos, "application_name", app)) < 0)
		return -1;
	values[0] = p->client_encoding;
	values[1] = p->datestyle;
	values[2] = p->timezone;
	for (i = 0; i < 3; i++)
	{
		if (values[i] == NULL)
			continue;
		if ((pos = put_pair(buf, bufsize, (size_t) pos, names[i], values[i])) < 0)
			return -1;
	}
	buf[pos++] = '\0';
	ag_pg_put32(buf, (uint32_t) pos);
	return (int) pos;
}

int
ag_pgproto_build_startup(const ag_pg_client_params *p, const char *role,
						 const char *stamp, uint8_t *buf, size_t bufsize)
{
	char		app[AG_PGPROTO_APPNAME_KEEP + 1 + AG_PGPROTO_MAX_STAMP + 1];

	if (role == NULL || !valid_name(role) || stamp == NULL ||
		strlen(stamp) > AG_PGPROTO_MAX_STAMP || !valid_text(stamp, AG_PGPROTO_MAX_STAMP) ||
		strchr(stamp, ' ') != NULL || p->database == NULL || !valid_name(p->database))
		return -1;
	ag_pgproto_app_name(p->application_name, stamp, app, sizeof(app));
	return build_startup(p, role, app, buf, bufsize);
}

int
ag_pgproto_build_shared_startup(const ag_pg_client_params *p, uint8_t *buf, size_t bufsize)
{
	if (p->database == NULL || !valid_name(p->database))
		return -1;
	return build_startup(p, AG_PGPROTO_POOL_ROLE, AG_PGPROTO_POOL_APPNAME, buf, bufsize);
}

/* Append a field: code byte, text (control characters masked), NUL. */
static long
put_field(uint8_t *buf, size_t bufsize, size_t pos, char code, const char *s)
{
	size_t		n = strlen(s);
	size_t		i;

	if (pos + 1 + n + 1 + 1 > bufsize)	/* + final terminator */
		return -1;
	buf[pos++] = (uint8_t) code;
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		buf[pos++] = (c < 0x20 && c != '\n') ? '?' : c;
	}
	buf[pos++] = '\0';
	return (long) pos;
}

int
ag_pgproto_error(uint8_t *buf, size_t bufsize, const char *severity,
				 const char *sqlstate, const char *msg, const char *detail,
				 const char *hint)
{
	long		pos = 5;

	if (bufsize < 6 || strlen(sqlstate) != 5)
		return -1;
	buf[0] = 'E';
	if ((pos = put_field(buf, bufsize, (size_t) pos, 'S', severity)) < 0 ||
		(pos = put_field(buf, bufsize, (size_t) pos, 'V', severity)) < 0 ||
		(pos = put_field(buf, bufsize, (size_t) pos, 'C', sqlstate)) < 0 ||
		(pos = put_field(buf, bufsize, (size_t) pos, 'M', msg)) < 0)
		return -1;
	if (detail && (pos = put_field(buf, bufsize, (size_t) pos, 'D', detail)) < 0)
		return -1;
	if (hint && (pos = put_field(buf, bufsize, (size_t) pos, 'H', hint)) < 0)
		return -1;
	buf[pos++] = '\0';
	ag_pg_put32(buf + 1, (uint32_t) (pos - 1));
	return (int) pos;
}

int
ag_pgproto_reserved_database(const char *database)
{
	return database != NULL && strcasecmp(database, "pgbouncer") == 0;
}
