/*-------------------------------------------------------------------------
 *
 * patterns.c
 *	  SQL-callable side of content patterns: the check of a row of
 *	  agentgate.patterns and the built-in rows.
 *
 * agentgate-proxy applies the patterns (docs/masking.md says why there);
 * the extension only keeps the table honest.  A regex is compiled here with
 * the same library and flags as in the proxy (ag_pattern_defs.h), so a row
 * the table accepts is one the proxy can compile, and a DBA learns of a
 * mistake from the INSERT, not from the proxy's log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"

#include "ag_pattern_defs.h"

PG_FUNCTION_INFO_V1(agentgate_pattern_check);
PG_FUNCTION_INFO_V1(agentgate_builtin_patterns);

/*
 * agentgate._pattern_check(regex, replacement, validator): raise an error
 * naming what is wrong with a pattern, else nothing.
 */
Datum
agentgate_pattern_check(PG_FUNCTION_ARGS)
{
	char	   *regex;
	char	   *replacement;
	char	   *validator = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	const char *why;
	hs_database_t *db = NULL;
	hs_compile_error_t *cerr = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("invalid agentgate pattern: regex and replacement may not be null")));
	regex = text_to_cstring(PG_GETARG_TEXT_PP(0));
	replacement = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (strlen(regex) > AG_PATTERN_MAX_REGEX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("invalid agentgate pattern: regex too long"),
				 errdetail("A regex may have at most %d bytes.", AG_PATTERN_MAX_REGEX)));
	if (hs_compile(regex, AG_PATTERN_HS_FLAGS, AG_PATTERN_HS_MODE, NULL, &db, &cerr) != HS_SUCCESS)
	{
		char	   *msg = pstrdup(cerr && cerr->message ? cerr->message : "unknown error");

		hs_free_compile_error(cerr);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("invalid agentgate pattern: the regex does not compile: %s", msg),
				 errhint("Patterns use Hyperscan's syntax (PCRE without back-references, look-around or lazy quantifiers), and may not match the empty string.")));
	}
	hs_free_database(db);

	if ((why = ag_pattern_replacement_problem(replacement)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid agentgate pattern: %s", why),
				 errdetail("The replacement goes into result rows, COPY lines and error messages as it is.")));
	if (!ag_pattern_validator_known(validator))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid agentgate pattern: unknown validator \"%s\"", validator),
				 errhint("Use one of %s, or null.", AG_PATTERN_VALIDATORS)));
	PG_RETURN_VOID();
}

/* agentgate._builtin_patterns(): name, regex, replacement, validator, reason. */
Datum
agentgate_builtin_patterns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	size_t		i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < AG_PATTERN_NBUILTINS; i++)
	{
		const ag_pattern_builtin *b = &ag_pattern_builtins[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, b->validator == NULL, false};

		values[0] = CStringGetTextDatum(b->name);
		values[1] = CStringGetTextDatum(b->regex);
		values[2] = CStringGetTextDatum(b->replacement);
		values[3] = b->validator ? CStringGetTextDatum(b->validator) : (Datum) 0;
		values[4] = CStringGetTextDatum(b->reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
