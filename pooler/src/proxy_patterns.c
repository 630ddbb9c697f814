/*-------------------------------------------------------------------------
 *
 * proxy_patterns.c
 *	  The content patterns in force: read from agentgate.patterns_for_proxy()
 *	  on an admin connection, compiled once per change, and handed to each
 *	  relay with the subset that applies to its role.
 *
 * Loading: the listening admin connection also LISTENs on
 * agentgate_patterns, which the extension notifies at the commit of every
 * change to agentgate.patterns; the set is read when that connection
 * becomes ready (notices may have been missed while it was down) and after
 * each notice.  Relays take a new set at their next message boundary.
 *
 * Fail closed: until a set has loaded, logins are refused (ag_admin_ready);
 * a set that fails to load or compile leaves the previous one in force,
 * with an error in the log, and is read again a second later.
 *
 * A set is reference-counted: a relay in the middle of a message keeps
 * the set it started the message with.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy.h"
#include "ag_patterns.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* One row per pattern, or per pattern and member role (see pattern_roles). */
#define PATTERNS_SQL \
	"SELECT p.name, p.regex, p.replacement, p.validator, p.members IS NULL, m.member " \
	"  FROM agentgate.patterns_for_proxy() AS p " \
	"  LEFT JOIN LATERAL unnest(p.members) AS m(member) ON true " \
	" ORDER BY p.name, m.member"

typedef struct pattern_roles
{
	int			all;			/* applies to every agent */
	char	  **members;		/* else to these roles, sorted */
	int			nmembers;
} pattern_roles;

struct ag_pattern_set
{
	int			refs;
	ag_patterns *p;
	pattern_roles *roles;
	int			n;
	uint64_t	generation;
};

static ag_pattern_set *current;
static uint64_t generation;

const char *
ag_proxy_patterns_sql(void)
{
	return PATTERNS_SQL;
}

int
ag_proxy_patterns_ready(void)
{
	return current != NULL;
}

static void
set_free(ag_pattern_set *s)
{
	int			i,
				k;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
	{
		for (k = 0; k < s->roles[i].nmembers; k++)
			free(s->roles[i].members[k]);
		free(s->roles[i].members);
	}
	free(s->roles);
	ag_patterns_free(s->p);
	free(s);
}

void
ag_pattern_set_release(ag_pattern_set *s)
{
	if (s != NULL && --s->refs == 0)
		set_free(s);
}

ag_pattern_set *
ag_pattern_set_current(void)
{
	if (current)
		current->refs++;
	return current;
}

uint64_t
ag_pattern_set_generation(const ag_pattern_set *s)
{
	return s ? s->generation : 0;
}

uint64_t
ag_proxy_patterns_generation(void)
{
	return generation;
}

ag_patterns *
ag_pattern_set_compiled(const ag_pattern_set *s)
{
	return s ? s->p : NULL;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

int
ag_pattern_set_active(const ag_pattern_set *s, const char *role, uint8_t **active, int *cap)
{
	const char *key = role;
	int			i;

	if (s == NULL || s->n == 0)
		return 0;
	if (*cap < s->n)
	{
		uint8_t    *a = realloc(*active, (size_t) s->n);

		if (a == NULL)
			return -1;
		*active = a;
		*cap = s->n;
	}
	for (i = 0; i < s->n; i++)
		(*active)[i] = s->roles[i].all ||
			(s->roles[i].nmembers > 0 &&
			 bsearch(&key, s->roles[i].members, (size_t) s->roles[i].nmembers,
					 sizeof(char *), name_cmp) != NULL);
	return 0;
}

/* Build a set from the rows of PATTERNS_SQL; NULL with err on failure. */
static ag_pattern_set *
set_build(PGresult *res, char *err, size_t errlen)
{
	int			rows = PQntuples(res);
	ag_pattern_set *s = calloc(1, sizeof(*s));
	ag_pattern_def *defs = calloc(rows > 0 ? rows : 1, sizeof(ag_pattern_def));
	int			i;

	if (s == NULL || defs == NULL ||
		(s->roles = calloc(rows > 0 ? rows : 1, sizeof(pattern_roles))) == NULL)
		goto nomem;
	for (i = 0; i < rows; i++)
	{
		const char *name = PQgetvalue(res, i, 0);
		pattern_roles *pr;

		/* a new pattern, or another member of the one before */
		if (s->n == 0 || strcmp(defs[s->n - 1].name, name) != 0)
		{
			defs[s->n].name = name;
			defs[s->n].regex = PQgetvalue(res, i, 1);
			defs[s->n].replacement = PQgetvalue(res, i, 2);
			defs[s->n].validator = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
			s->roles[s->n].all = strcmp(PQgetvalue(res, i, 4), "t") == 0;
			s->n++;
		}
		pr = &s->roles[s->n - 1];
		if (!pr->all && !PQgetisnull(res, i, 5))
		{
			char	  **m = realloc(pr->members, sizeof(char *) * (pr->nmembers + 1));

			if (m == NULL)
				goto nomem;
			pr->members = m;
			if ((m[pr->nmembers] = strdup(PQgetvalue(res, i, 5))) == NULL)
				goto nomem;
			pr->nmembers++;
		}
	}
	for (i = 0; i < s->n; i++)
		if (s->roles[i].nmembers > 1)
			qsort(s->roles[i].members, (size_t) s->roles[i].nmembers, sizeof(char *), name_cmp);
	s->p = ag_patterns_compile(defs, s->n, err, errlen);
	free(defs);
	if (s->p == NULL)
	{
		set_free(s);
		return NULL;
	}
	return s;

nomem:
	snprintf(err, errlen, "out of memory");
	free(defs);
	set_free(s);
	return NULL;
}

int
ag_proxy_patterns_result(PGresult *res)
{
	char		err[512];
	ag_pattern_set *s;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 6)
	{
		char		msg[300];
		size_t		n;

		snprintf(msg, sizeof(msg), "%s", PQresultStatus(res) == PGRES_FATAL_ERROR
				 ? PQresultErrorMessage(res) : PQresStatus(PQresultStatus(res)));
		n = strlen(msg);
		while (n > 0 && msg[n - 1] == '\n')
			msg[--n] = '\0';
		ag_log(AG_LOG_ERROR, NULL, "content patterns could not be read: %s; %s", msg,
			   current ? "the previous set stays in force"
			   : "logins are refused until they load");
		return -1;
	}
	s = set_build(res, err, sizeof(err));
	if (s == NULL)
	{
		ag_log(AG_LOG_ERROR, NULL, "content patterns could not be compiled: %s; %s", err,
			   current ? "the previous set stays in force"
			   : "logins are refused until they load");
		return -1;
	}
	s->refs = 1;
	s->generation = ++generation;
	ag_pattern_set_release(current);
	current = s;
	ag_log(AG_LOG_INFO, NULL, "content patterns loaded: %d enabled", s->n);
	return 0;
}
