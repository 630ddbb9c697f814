/*-------------------------------------------------------------------------
 *
 * pgquery.c
 *	  Fingerprints and normalised statement text via libpg_query.
 *
 * libpg_query is linked as one object whose only global symbols are the
 * four entry points used here (see pgquery.mk).  Its normaliser recurses
 * without any stack-depth check and overflows the stack on deep expression
 * trees (around 25,000 terms), which inside a backend would take down the
 * whole cluster.  So input is bounded twice before libpg_query sees it: by
 * length, and by a count of the characters that can deepen a parse tree
 * (operators and opening parentheses outside literals and comments).  The
 * callers also hand it only text the server has already parsed, under the
 * server's own check_stack_depth().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pg_query.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "agentgate.h"
#include "pgquery.h"

PG_FUNCTION_INFO_V1(agentgate_normalize);
PG_FUNCTION_INFO_V1(agentgate_fingerprint);

/*
 * Rough upper bound of the expression depth: operators and '(' outside
 * quotes and comments.  Errs on the side of counting too much.
 */
static int
count_terms(const char *s, int len)
{
	int			n = 0;
	char		quote = 0;

	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (quote)
		{
			if (c == quote)
				quote = 0;
			continue;
		}
		switch (c)
		{
			case '\'':
			case '"':
				quote = c;
				break;
			case '(':
			case '+':
			case '-':
			case '*':
			case '/':
			case '%':
			case '<':
			case '>':
			case '=':
			case '|':
			case '&':
			case '^':
			case '~':
			case '!':
			case '@':
			case '#':
			case ',':
				n++;
				break;
			default:
				/* keywords such as AND/OR deepen trees too */
				if ((c == 'A' || c == 'a' || c == 'O' || c == 'o') && i + 2 < len &&
					(i == 0 || !isalnum((unsigned char) s[i - 1])))
					n++;
				break;
		}
	}
	return n;
}

static char *
checked_copy(const char *sql, int len, char **errmsg)
{
	if (len < 0 || len > AG_PGQ_MAX_INPUT)
	{
		*errmsg = psprintf("statement of %d bytes exceeds the %d-byte limit", len, AG_PGQ_MAX_INPUT);
		return NULL;
	}
	if (memchr(sql, '\0', len) != NULL)
	{
		*errmsg = pstrdup("statement contains a NUL byte");
		return NULL;
	}
	if (count_terms(sql, len) > AG_PGQ_MAX_TERMS)
	{
		*errmsg = psprintf("statement has more than %d operators or nested expressions", AG_PGQ_MAX_TERMS);
		return NULL;
	}
	return pnstrdup(sql, len);
}

bool
ag_pgq_normalize(const char *sql, int len, char **out, char **errmsg)
{
	PgQueryNormalizeResult res;
	char	   *input = checked_copy(sql, len, errmsg);
	bool		ok;

	*out = NULL;
	if (input == NULL)
		return false;
	res = pg_query_normalize(input);
	ok = (res.error == NULL && res.normalized_query != NULL);
	if (ok)
		*out = pstrdup(res.normalized_query);
	else
		*errmsg = pstrdup(res.error && res.error->message ? res.error->message : "normalisation failed");
	pg_query_free_normalize_result(res);
	pfree(input);
	return ok;
}

bool
ag_pgq_fingerprint(const char *sql, int len, char *out_hex, char **errmsg)
{
	PgQueryFingerprintResult res;
	char	   *input = checked_copy(sql, len, errmsg);
	bool		ok;

	out_hex[0] = '\0';
	if (input == NULL)
		return false;
	res = pg_query_fingerprint(input);
	ok = (res.error == NULL);
	if (ok)
		snprintf(out_hex, AG_PGQ_FINGERPRINT_LEN + 1, "%016llx",
				 (unsigned long long) res.fingerprint);
	else
		*errmsg = pstrdup(res.error->message ? res.error->message : "fingerprinting failed");
	pg_query_free_fingerprint_result(res);
	pfree(input);
	return ok;
}

/* agentgate.normalize(sql text): the text the audit log stores for sql. */
Datum
agentgate_normalize(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char	   *out;
	char	   *err;

	if (!ag_pgq_normalize(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &out, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot normalize statement"),
				 errdetail("%s", err)));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* agentgate.fingerprint(sql text): the fingerprint rules match on. */
Datum
agentgate_fingerprint(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char		hex[AG_PGQ_FINGERPRINT_LEN + 1];
	char	   *err;

	if (!ag_pgq_fingerprint(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), hex, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot fingerprint statement"),
				 errdetail("%s", err)));
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}
