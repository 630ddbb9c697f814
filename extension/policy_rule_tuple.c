/*-------------------------------------------------------------------------
 *
 * policy_rule_tuple.c
 *	  One row of agentgate.rules, decoded into a rule (AgRule).
 *
 * Two readers need the same row read the same way: the validator trigger
 * (policy_sql.c), which refuses a row that could not mean what its author
 * thinks, and the rules cache (policy_rules.c), which must still do the
 * safe thing with a row that got past the validator (a restore, a command
 * tag a later server dropped, a row written by a later version).  So there
 * is one decoder, and it reports each flaw through one callback: the
 * validator raises it as an error, the cache decides what the rule still
 * does.  A flaw the cache has to act on is read fail-closed before it is
 * reported: commands not understood are read as every command, a condition
 * not understood as none, an action not understood as block.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "agentgate.h"
#include "pgquery.h"
#include "policy.h"

/* The index in desc of column name, or -1. */
static int
attnum_if_any(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	return -1;
}

/*
 * ag_table_attnum: the index in desc of column name of agentgate's table
 * table (rules, masks), for the caches that deform their rows.
 */
int
ag_table_attnum(TupleDesc desc, const char *table, const char *name)
{
	int			i = attnum_if_any(desc, name);

	if (i < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate.%s has no column \"%s\"", table, name),
				 errhint("Update the agentgate extension.")));
	return i;
}

static int
attnum_of(TupleDesc desc, const char *name)
{
	return ag_table_attnum(desc, "rules", name);
}

/* Where each column of agentgate.rules is (0-based, for deformed rows). */
void
ag_rule_columns(TupleDesc desc, AgRuleColumns *c)
{
	c->id = attnum_of(desc, "id");
	c->priority = attnum_of(desc, "priority");
	c->enabled = attnum_of(desc, "enabled");
	c->applies_to = attnum_of(desc, "applies_to");
	c->commands = attnum_of(desc, "commands");
	c->relation = attnum_of(desc, "relation");
	c->schema = attnum_of(desc, "schema");
	c->columns = attnum_of(desc, "columns");
	c->functions = attnum_of(desc, "functions");
	c->condition = attnum_of(desc, "condition");
	c->max_rows = attnum_of(desc, "max_rows");
	c->fingerprint = attnum_of(desc, "fingerprint");
	c->action = attnum_of(desc, "action");
	c->reason = attnum_of(desc, "reason");

	/*
	 * The approval columns come after the rules table's first rows (the
	 * baseline is inserted by an earlier part of the install script): -1
	 * while they are not there, read as NULL.
	 */
	c->approval_mode = attnum_if_any(desc, "approval_mode");
	c->approval_timeout = attnum_if_any(desc, "approval_timeout");
	c->approvers = attnum_if_any(desc, "approvers");
	c->min_approvals = attnum_if_any(desc, "min_approvals");
	/* added in 0.2.0: a server running 0.1.0's tables reads it as NULL */
	c->scopes = attnum_if_any(desc, "scopes");
}

/* Upper-case, trimmed, single-spaced copy of a command name. */
static char *
normalize_command(const char *s)
{
	StringInfoData buf;
	bool		space = false;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		{
			space = buf.len > 0;
			continue;
		}
		if (space)
			appendStringInfoChar(&buf, ' ');
		space = false;
		appendStringInfoChar(&buf, pg_toupper((unsigned char) *s));
	}
	return buf.data;
}

/*
 * parse_commands turns a rule's commands into its tag and class sets and
 * their canonical spelling (a class by its name, a tag by the name of the
 * tag it stands for: TRUNCATE TABLE is TRUNCATE).  It returns the first
 * entry it does not know, or NULL when all are known.
 */
static const char *
parse_commands(Datum *elems, bool *nulls, int n, AgRule *r)
{
	int			i;

	r->commands = palloc(sizeof(char *) * n);
	for (i = 0; i < n; i++)
	{
		char	   *name;
		AgClass		cls;
		int			tag;

		if (nulls[i])
			return "NULL";
		name = normalize_command(TextDatumGetCString(elems[i]));
		cls = ag_class_lookup(name);
		if (cls != AG_CLASS_NONE)
		{
			r->classes |= (1U << cls);
			r->commands[r->ncommands++] = name;
			continue;
		}
		tag = ag_tag_lookup(name);
		if (tag < 0)
			return name;
		r->tags = bms_add_member(r->tags, tag);
		r->commands[r->ncommands++] = ag_tag_name(tag);
	}
	return NULL;
}

static AgCondition
condition_lookup(const char *s, bool *ok)
{
	*ok = true;
	if (s == NULL)
		return AG_COND_NONE;
	if (strcmp(s, "no_where") == 0)
		return AG_COND_NO_WHERE;
	if (strcmp(s, "not_owner") == 0)
		return AG_COND_NOT_OWNER;
	if (strcmp(s, "untrusted_language") == 0)
		return AG_COND_UNTRUSTED_LANGUAGE;
	*ok = false;
	return AG_COND_NONE;
}

/* The callback that hears of the flaws of the rule being decoded. */
typedef struct Decoding
{
	const AgRule *rule;
	AgRuleFlawFn fn;
	void	   *arg;
} Decoding;

static void
flaw(Decoding *dc, AgRuleFlawKind kind, const char *value,
	 const char *msg, const char *detail, const char *hint)
{
	AgRuleFlaw	f;

	f.kind = kind;
	f.value = value;
	f.msg = msg;
	f.detail = detail;
	f.hint = hint;
	dc->fn(dc->rule, &f, dc->arg);
}

/* A flaw the validator refuses and the cache reads past. */
static void
refused(Decoding *dc, const char *msg, const char *detail, const char *hint)
{
	flaw(dc, AG_RULE_FLAW_REFUSED, NULL, msg, detail, hint);
}

/*
 * How an approve rule asks (mode, timeout, approvers, min_approvals); the
 * columns are for approve rules only.  Read fail-closed: an unknown mode is
 * read as retry (refused at once), a missing approver role as one nobody
 * is a member of.
 */
static void
decode_approval(Decoding *dc, const AgRuleColumns *cols, Datum *values,
				bool *isnull, AgRule *r)
{
	AgApprovalRule *a = &r->approval;
	bool		mode_null = cols->approval_mode < 0 || isnull[cols->approval_mode];
	bool		timeout_null = cols->approval_timeout < 0 || isnull[cols->approval_timeout];
	bool		approvers_null = cols->approvers < 0 || isnull[cols->approvers];
	bool		min_null = cols->min_approvals < 0 || isnull[cols->min_approvals];
	bool		any = !mode_null || !timeout_null || !approvers_null || !min_null;

	a->mode = AG_APPROVAL_RETRY;
	a->timeout_ms = 5 * 60 * 1000;
	a->approvers = InvalidOid;
	a->min_approvals = 1;
	if (r->action != AG_ACTION_APPROVE)
	{
		if (any)
			refused(dc, "approval_mode, approval_timeout, approvers and min_approvals are for approve rules only",
					NULL, "Use agentgate.require_approval() for a rule that asks for approval.");
		return;
	}
	if (r->max_rows >= 0)
		refused(dc, "an approve rule cannot have max_rows", NULL,
				"The row count is known only after the statement ran; use a block rule with max_rows.");
	if (!mode_null)
	{
		const char *m = TextDatumGetCString(values[cols->approval_mode]);

		if (strcmp(m, "wait") == 0)
			a->mode = AG_APPROVAL_WAIT;
		else if (strcmp(m, "retry") != 0)
			refused(dc, psprintf("unknown approval mode \"%s\"", m), NULL,
					"An approval mode is retry or wait.");
	}
	if (!timeout_null)
	{
		Interval   *iv = DatumGetIntervalP(values[cols->approval_timeout]);
		int64		us = iv->time + (int64) iv->day * USECS_PER_DAY +
			(int64) iv->month * 30 * USECS_PER_DAY;

		if (us < 1000 || iv->month < 0 || iv->day < 0)
			refused(dc, "approval_timeout must be positive", NULL, NULL);
		else
			a->timeout_ms = Min(us / 1000, (int64) 366 * 24 * 3600 * 1000);
	}
	if (!approvers_null)
	{
		a->approvers = DatumGetObjectId(values[cols->approvers]);
		if (!SearchSysCacheExists1(AUTHOID, values[cols->approvers]))
			refused(dc, psprintf("role with OID %u does not exist", a->approvers),
					NULL, NULL);
	}
	else
	{
		a->approvers = get_role_oid("agentgate_approver", true);
		if (!OidIsValid(a->approvers))
			refused(dc, "role \"agentgate_approver\" does not exist", NULL,
					"Name the approvers' role in the rule's approvers column.");
	}
	if (!min_null)
	{
		a->min_approvals = DatumGetInt32(values[cols->min_approvals]);
		if (a->min_approvals < 1)
		{
			refused(dc, "min_approvals must be at least 1", NULL, NULL);
			a->min_approvals = 1;
		}
	}
}

/*
 * ag_rule_from_tuple decodes one deformed row of agentgate.rules (values
 * and isnull, laid out as cols says) into *r, calling fn for each flaw in
 * the order the validator checks them.  fn may raise an error (the
 * validator) or return (the cache), and decoding then goes on with the
 * rule read as the comment at the top of this file says.
 */
void
ag_rule_from_tuple(const AgRuleColumns *cols, Datum *values, bool *isnull,
				   AgRule *r, AgRuleFlawFn fn, void *arg)
{
	Decoding	dcd = {r, fn, arg};
	Decoding   *dc = &dcd;
	const char *s;
	bool		rel_exists = false;
	bool		ok;

	memset(r, 0, sizeof(AgRule));
	r->id = isnull[cols->id] ? 0 : DatumGetInt64(values[cols->id]);
	r->priority = isnull[cols->priority] ? 0 :
		DatumGetInt32(values[cols->priority]);
	r->max_rows = -1;

	/*
	 * What the rule does, first: a block rule (or an action of a later
	 * version, refused like one) that cannot be understood must still block.
	 */
	s = isnull[cols->action] ? "" : TextDatumGetCString(values[cols->action]);
	if (strcmp(s, "allow") == 0)
		r->action = AG_ACTION_ALLOW;
	else if (strcmp(s, "log") == 0)
		r->action = AG_ACTION_LOG;
	else if (strcmp(s, "approve") == 0)
		r->action = AG_ACTION_APPROVE;
	else
		r->action = AG_ACTION_BLOCK;
	if (strcmp(s, "allow") != 0 && strcmp(s, "block") != 0 &&
		strcmp(s, "log") != 0 && strcmp(s, "approve") != 0)
		refused(dc, psprintf("unknown action \"%s\"", s), NULL,
				"An action is one of allow, block, log or approve.");

	/* applies_to: no role is read as every agent */
	if (isnull[cols->applies_to])
	{
		refused(dc, "applies_to must name a role", NULL, NULL);
		r->applies_to = ag_agent_role_oid();
	}
	else
	{
		r->applies_to = DatumGetObjectId(values[cols->applies_to]);
		if (!SearchSysCacheExists1(AUTHOID, values[cols->applies_to]))
			refused(dc, psprintf("role with OID %u does not exist", r->applies_to),
					NULL, NULL);
	}

	/* commands: tags or classes; none (or an empty list) is every command */
	r->any_command = true;
	if (!isnull[cols->commands])
	{
		ArrayType  *arr = DatumGetArrayTypeP(values[cols->commands]);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		if (ARR_NDIM(arr) > 1)
			refused(dc, "commands must be a one-dimensional array", NULL, NULL);
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		if (n > 0)
		{
			const char *bad;

			r->any_command = false;
			bad = parse_commands(elems, nulls, n, r);
			if (bad != NULL)
			{
				/* every command in the rule's scope (fail closed) */
				r->any_command = true;
				r->tags = NULL;
				r->classes = 0;
				r->ncommands = 0;
				flaw(dc, AG_RULE_FLAW_COMMAND, bad,
					 psprintf("unknown command \"%s\"", bad),
					 "A command is a command tag such as SELECT, DELETE, DROP TABLE or ALTER SYSTEM, or a class: READ, WRITE, DDL, ROLE, FUNCTION, MISC.",
					 "SELECT * FROM agentgate.command_tags() lists them all.");
			}
		}
		else
			refused(dc, "commands is empty", NULL,
					"Use NULL for a rule that applies to every command.");
	}

	/* relation and schema */
	if (!isnull[cols->relation])
	{
		r->relid = DatumGetObjectId(values[cols->relation]);
		rel_exists = get_rel_relkind(r->relid) != '\0';
		if (!rel_exists)
			refused(dc, psprintf("relation with OID %u does not exist", r->relid),
					NULL, NULL);
		r->rel_has_children = rel_exists && has_subclass(r->relid);
	}
	if (!isnull[cols->schema])
	{
		r->schema = DatumGetObjectId(values[cols->schema]);
		if (OidIsValid(r->relid))
			refused(dc, "a rule names a relation or a schema, not both", NULL, NULL);
		if (!SearchSysCacheExists1(NAMESPACEOID, values[cols->schema]))
			refused(dc, psprintf("schema with OID %u does not exist", r->schema),
					NULL, NULL);
	}

	/* columns, of the relation */
	if (!isnull[cols->columns])
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		if (!OidIsValid(r->relid))
			refused(dc, "columns need a relation", NULL,
					"Set relation to the table or view the columns belong to.");
		deconstruct_array(DatumGetArrayTypeP(values[cols->columns]), TEXTOID,
						  -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			refused(dc, "columns is empty", NULL, "Use NULL for every column.");
		r->cols = palloc(sizeof(char *) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			char	   *col;

			if (nulls[i])
			{
				refused(dc, "columns contains NULL", NULL, NULL);
				continue;
			}
			col = TextDatumGetCString(elems[i]);
			if (rel_exists && get_attnum(r->relid, col) <= 0)
				refused(dc, psprintf("column \"%s\" of relation \"%s\" does not exist",
								 col, get_rel_name(r->relid)), NULL, NULL);
			r->cols[r->ncols++] = col;
		}
	}

	/* functions */
	if (!isnull[cols->functions])
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		if (OidIsValid(r->relid))
			refused(dc, "a rule names a relation or functions, not both", NULL, NULL);
		deconstruct_array(DatumGetArrayTypeP(values[cols->functions]),
						  REGPROCEDUREOID, sizeof(Oid), true, TYPALIGN_INT,
						  &elems, &nulls, &n);
		if (n == 0)
			refused(dc, "functions is empty", NULL, "Use NULL for no function.");
		r->funcs = palloc(sizeof(Oid) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			if (nulls[i] || !SearchSysCacheExists1(PROCOID, elems[i]))
				refused(dc, "functions names a function that does not exist",
						NULL, NULL);
			if (!nulls[i])
				r->funcs[r->nfuncs++] = DatumGetObjectId(elems[i]);
		}
	}

	/* condition */
	s = isnull[cols->condition] ? NULL :
		TextDatumGetCString(values[cols->condition]);
	r->cond = condition_lookup(s, &ok);
	if (!ok)
		flaw(dc, AG_RULE_FLAW_CONDITION, s,
			 psprintf("unknown condition \"%s\"", s), NULL,
			 "A condition is no_where, not_owner or untrusted_language; use max_rows for row limits.");
	if (r->cond == AG_COND_NO_WHERE && !r->any_command)
	{
		Bitmapset  *allowed = NULL;

		allowed = bms_add_member(allowed, CMDTAG_UPDATE);
		allowed = bms_add_member(allowed, CMDTAG_DELETE);
		allowed = bms_add_member(allowed, CMDTAG_MERGE);
		if ((r->classes & ~(1U << AG_CLASS_WRITE)) != 0 ||
			!bms_is_subset(r->tags, allowed))
			refused(dc, "condition no_where applies only to UPDATE, DELETE, MERGE or WRITE",
					NULL, NULL);
	}

	/* max_rows */
	if (!isnull[cols->max_rows])
	{
		r->max_rows = DatumGetInt64(values[cols->max_rows]);
		if (r->max_rows < 0)
			refused(dc, "max_rows must not be negative", NULL, NULL);
	}

	/* fingerprint: 16 hex digits, read lower-case (matched ignoring case) */
	if (!isnull[cols->fingerprint])
	{
		char	   *fp = TextDatumGetCString(values[cols->fingerprint]);
		bool		good = strlen(fp) == AG_PGQ_FINGERPRINT_LEN;
		int			i;

		for (i = 0; good && fp[i]; i++)
		{
			if (isxdigit((unsigned char) fp[i]))
				fp[i] = pg_tolower((unsigned char) fp[i]);
			else
				good = false;
		}
		if (!good)
			refused(dc, psprintf("fingerprint \"%s\" is not %d hexadecimal digits",
								 fp, AG_PGQ_FINGERPRINT_LEN), NULL,
					"Use agentgate.fingerprint('<statement>') to compute it.");
		r->fingerprint = fp;
	}

	/*
	 * scopes: the rule applies only to sessions whose token's scope names
	 * one of them (docs/identity.md, "Scopes").  An entry that cannot be a
	 * scope is refused; a block or approve rule with one is read as applying
	 * to every session, other rules keep what they say (an entry no token can carry
	 * matches nothing).
	 */
	if (cols->scopes >= 0 && !isnull[cols->scopes])
	{
		ArrayType  *arr = DatumGetArrayTypeP(values[cols->scopes]);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		bool		flawed = false;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		r->scopes = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			char	   *sc = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
			size_t		len = sc ? strlen(sc) : 0;
			bool		good = len > 0 && len < NAMEDATALEN;

			for (size_t k = 0; good && k < len; k++)
				good = (unsigned char) sc[k] > 0x20 && sc[k] != 0x7f;
			if (!good)
			{
				refused(dc, sc ? psprintf("scope \"%s\" is not a scope a token can carry", sc) :
						pstrdup("scopes holds a null"), NULL,
						"A scope is 1 to 63 bytes without spaces or control characters.");
				flawed = true;
				continue;
			}
			r->scopes[r->nscopes++] = sc;
		}
		if (n == 0)
			refused(dc, "scopes is empty", NULL,
					"Leave scopes NULL for a rule that applies to every session.");
		if ((r->action == AG_ACTION_BLOCK || r->action == AG_ACTION_APPROVE) &&
			(flawed || n == 0))
			r->nscopes = 0;
		else if (r->nscopes == 0)
		{
			/* nothing usable: a scope no token carries, so it matches nothing */
			r->scopes[0] = "";
			r->nscopes = 1;
		}
	}

	r->reason = isnull[cols->reason] ? "" :
		TextDatumGetCString(values[cols->reason]);

	decode_approval(dc, cols, values, isnull, r);
}
