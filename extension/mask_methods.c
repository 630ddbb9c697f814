/*-------------------------------------------------------------------------
 *
 * mask_methods.c
 *	  The mask methods: what a masked column reads as.
 *
 *	  redact	a constant of the column's type (table below), or NULL for
 *				types with no documented constant
 *	  null		NULL of the column's type
 *	  partial	agentgate.mask_partial(): the last 4 characters, every
 *				other character replaced by 'x' (string columns)
 *	  email		agentgate.mask_email(): 'xxxx@' and the domain (string
 *				columns)
 *	  hash		agentgate.mask_hash(): a keyed pseudonym, 32 hex digits of
 *				HMAC-SHA256(agentgate.mask_hash_key, value) (string columns)
 *	  function	a DBA's function of the column's type
 *
 * null is a constant of the plan, and so is redact on a NOT NULL column:
 * they cost nothing per row and the planner folds whatever depends on
 * them.  On a column that may be NULL, redact is CASE WHEN col IS NULL
 * THEN NULL ELSE constant END, a test per row, so that NULL stays NULL.  The per-row functions
 * are STRICT (NULL stays NULL, so count(col) keeps its meaning) and
 * allocate one result each.
 *
 * The hash key is a secret: like the session key it is kept where only
 * this code reads it, and SHOW shows a mask.  It is read from the
 * configuration (PGC_SIGHUP), so every session hashes with the same key.
 * mask_hash is parallel restricted because parallel workers receive the
 * mask, not the key.  An agent calling mask_hash itself could test guesses
 * against pseudonyms it has seen; mask.c refuses such calls in governed
 * sessions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include <openssl/evp.h>

#include "agentgate.h"
#include "mask.h"
#include "policy.h"

PG_FUNCTION_INFO_V1(agentgate_mask_partial);
PG_FUNCTION_INFO_V1(agentgate_mask_email);
PG_FUNCTION_INFO_V1(agentgate_mask_hash);

#define MASK_KEEP		4		/* characters partial keeps */
#define MASK_FILL		'x'
#define MASK_REDACTED	"xxxx"
#define MASK_HASH_HEX	32		/* hex digits of the pseudonym */
#define MASK_KEY_MIN	16

/*
 * agentgate.mask_hash_key: the secret of the hash method.  The check hook
 * (identity.c's, shared with the session key) keeps the key in extra and
 * the mask as the value.
 */
static char *hash_key_setting = NULL;
static const char *hash_key = NULL;

static void
hash_key_assign(const char *newval, void *extra)
{
	hash_key = extra;
}

void
ag_mask_methods_init(void)
{
	DefineCustomStringVariable("agentgate.mask_hash_key",
							   "Secret of the hash mask method.",
							   "At least 16 characters.  Equal values hash alike in every table "
							   "and session while it stays the same.  Shown as a mask.",
							   &hash_key_setting,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   ag_secret_setting_check, hash_key_assign, NULL);
}

/* ---- the per-row functions ---- */

/* partial: keep the last MASK_KEEP characters, replace the others */
Datum
agentgate_mask_partial(PG_FUNCTION_ARGS)
{
	text	   *in = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(in);
	int			len = VARSIZE_ANY_EXHDR(in);
	int			nchars;
	int			hide;
	const char *tail = s;
	int			i;
	text	   *out;
	char	   *p;

	/* ASCII (most card numbers, SSNs, phone numbers): one byte a character */
	for (i = 0; i < len && !IS_HIGHBIT_SET(s[i]); i++)
		;
	if (i == len)
	{
		hide = len > MASK_KEEP ? len - MASK_KEEP : len;
		tail = s + hide;
	}
	else
	{
		nchars = pg_mbstrlen_with_len(s, len);
		hide = nchars > MASK_KEEP ? nchars - MASK_KEEP : nchars;
		for (i = 0; i < hide; i++)
			tail += pg_mblen(tail);
	}
	out = (text *) palloc(VARHDRSZ + hide + (s + len - tail));
	SET_VARSIZE(out, VARHDRSZ + hide + (s + len - tail));
	p = VARDATA(out);
	memset(p, MASK_FILL, hide);
	memcpy(p + hide, tail, s + len - tail);
	PG_RETURN_TEXT_P(out);
}

/* email: 'xxxx@' and what follows the last '@'; 'xxxx' with no '@' */
Datum
agentgate_mask_email(PG_FUNCTION_ARGS)
{
	text	   *in = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(in);
	int			len = VARSIZE_ANY_EXHDR(in);
	const char *at = NULL;
	int			i;
	int			dlen;
	text	   *out;

	/* '@' is ASCII: no multibyte encoding PostgreSQL supports reuses it */
	for (i = 0; i < len; i++)
		if (s[i] == '@')
			at = s + i;
	dlen = at ? (s + len) - at : 0;
	out = (text *) palloc(VARHDRSZ + strlen(MASK_REDACTED) + dlen);
	SET_VARSIZE(out, VARHDRSZ + strlen(MASK_REDACTED) + dlen);
	memcpy(VARDATA(out), MASK_REDACTED, strlen(MASK_REDACTED));
	if (at)
		memcpy(VARDATA(out) + strlen(MASK_REDACTED), at, dlen);
	PG_RETURN_TEXT_P(out);
}

/*
 * hash: HMAC-SHA256(key, value) (RFC 2104), the first 16 bytes in hex.
 * The digest states after the padded key are made once per key and
 * copied for each value: a fresh HMAC context per row cost several times
 * the hash itself.
 */
static EVP_MD_CTX *hmac_inner = NULL;	/* SHA-256 after key ^ ipad */
static EVP_MD_CTX *hmac_outer = NULL;	/* SHA-256 after key ^ opad */
static EVP_MD_CTX *hmac_work = NULL;
static const char *hmac_key = NULL;	/* the key they were made for */

#define HMAC_BLOCK 64			/* SHA-256's block size */

static void
hmac_failed(void)
{
	hmac_key = NULL;
	elog(ERROR, "agentgate: could not compute HMAC-SHA256 for the hash mask");
}

static void
hmac_prepare(void)
{
	uint8		k[HMAC_BLOCK];
	uint8		pad[HMAC_BLOCK];
	size_t		keylen = strlen(hash_key);
	int			i;

	if (hmac_key == hash_key && hmac_inner != NULL)
		return;
	if (hmac_inner == NULL &&
		((hmac_inner = EVP_MD_CTX_new()) == NULL ||
		 (hmac_outer = EVP_MD_CTX_new()) == NULL ||
		 (hmac_work = EVP_MD_CTX_new()) == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	memset(k, 0, sizeof(k));
	if (keylen > HMAC_BLOCK)
	{
		if (EVP_Digest(hash_key, keylen, k, NULL, EVP_sha256(), NULL) != 1)
			hmac_failed();
	}
	else
		memcpy(k, hash_key, keylen);
	for (i = 0; i < HMAC_BLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	if (EVP_DigestInit_ex(hmac_inner, EVP_sha256(), NULL) != 1 ||
		EVP_DigestUpdate(hmac_inner, pad, HMAC_BLOCK) != 1)
		hmac_failed();
	for (i = 0; i < HMAC_BLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	if (EVP_DigestInit_ex(hmac_outer, EVP_sha256(), NULL) != 1 ||
		EVP_DigestUpdate(hmac_outer, pad, HMAC_BLOCK) != 1)
		hmac_failed();
	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	hmac_key = hash_key;
}

Datum
agentgate_mask_hash(PG_FUNCTION_ARGS)
{
	text	   *in = PG_GETARG_TEXT_PP(0);
	uint8		ih[PG_SHA256_DIGEST_LENGTH];
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	text	   *out;

	if (hash_key == NULL || strlen(hash_key) < MASK_KEY_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentgate.mask_hash_key is not set"),
				 errdetail("The hash mask method needs a secret of at least %d characters.",
						   MASK_KEY_MIN),
				 errhint("Set agentgate.mask_hash_key in postgresql.conf (for example to the output of \"openssl rand -hex 32\") and reload.")));
	hmac_prepare();
	if (EVP_MD_CTX_copy_ex(hmac_work, hmac_inner) != 1 ||
		EVP_DigestUpdate(hmac_work, VARDATA_ANY(in), VARSIZE_ANY_EXHDR(in)) != 1 ||
		EVP_DigestFinal_ex(hmac_work, ih, NULL) != 1 ||
		EVP_MD_CTX_copy_ex(hmac_work, hmac_outer) != 1 ||
		EVP_DigestUpdate(hmac_work, ih, sizeof(ih)) != 1 ||
		EVP_DigestFinal_ex(hmac_work, mac, NULL) != 1)
		hmac_failed();
	out = (text *) palloc(VARHDRSZ + MASK_HASH_HEX);
	SET_VARSIZE(out, VARHDRSZ + MASK_HASH_HEX);
	hex_encode((const char *) mac, MASK_HASH_HEX / 2, VARDATA(out));
	PG_RETURN_TEXT_P(out);
}

/* ---- building mask expressions ---- */

bool
ag_mask_builtin_lookup(const char *name, AgMaskMethod *m)
{
	static const struct
	{
		const char *name;
		AgMaskMethod method;
	}			methods[] = {
		{"redact", AG_MASK_REDACT},
		{"null", AG_MASK_NULL},
		{"partial", AG_MASK_PARTIAL},
		{"email", AG_MASK_EMAIL},
		{"hash", AG_MASK_HASH},
	};
	int			i;

	for (i = 0; i < lengthof(methods); i++)
		if (strcmp(name, methods[i].name) == 0)
		{
			*m = methods[i].method;
			return true;
		}
	return false;
}

const char *
ag_mask_method_name(AgMaskMethod m)
{
	switch (m)
	{
		case AG_MASK_REDACT:
			return "redact";
		case AG_MASK_NULL:
			return "null";
		case AG_MASK_PARTIAL:
			return "partial";
		case AG_MASK_EMAIL:
			return "email";
		case AG_MASK_HASH:
			return "hash";
		case AG_MASK_FUNCTION:
			return "function";
	}
	return "?";
}

/* The C function of a per-row built-in method, in agentgate's schema. */
Oid
ag_mask_method_func(AgMaskMethod m)
{
	const char *fname;
	Oid			argtype = TEXTOID;

	switch (m)
	{
		case AG_MASK_PARTIAL:
			fname = "mask_partial";
			break;
		case AG_MASK_EMAIL:
			fname = "mask_email";
			break;
		case AG_MASK_HASH:
			fname = "mask_hash";
			break;
		default:
			return InvalidOid;
	}
	return LookupFuncName(list_make2(makeString(AG_SCHEMA), makeString((char *) fname)),
						  1, &argtype, true);
}

/*
 * Columns the per-row built-ins accept: string types stored as varlena
 * (text, varchar, char(n), citext and domains over them), which are read
 * as text without a conversion.
 */
bool
ag_mask_type_is_string(Oid typid)
{
	Oid			base = getBaseType(typid);
	char		category;
	bool		preferred;

	get_type_category_preferred(base, &category, &preferred);
	return category == TYPCATEGORY_STRING && get_typlen(base) == -1;
}

/*
 * The redact constant of a type.  Documented in docs/masking.md: strings
 * 'xxxx' (cut to a shorter declared length), numbers 0, dates and times
 * the epoch, intervals 0, booleans false, uuid all zeros, bytea empty,
 * json and jsonb {}, arrays empty; NULL for every other type.
 */
Const *
ag_mask_redact_const(Oid typid, int32 typmod, Oid collid)
{
	int32		btypmod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &btypmod);
	char		category;
	bool		preferred;
	const char *s = NULL;
	char		buf[8];
	int16		typlen;
	bool		typbyval;
	Oid			typinput;
	Oid			typioparam;
	Datum		d;

	get_type_category_preferred(base, &category, &preferred);
	switch (base)
	{
		case DATEOID:
			s = "1970-01-01";
			break;
		case TIMESTAMPOID:
			s = "1970-01-01 00:00:00";
			break;
		case TIMESTAMPTZOID:
			s = "1970-01-01 00:00:00+00";
			break;
		case TIMEOID:
			s = "00:00:00";
			break;
		case TIMETZOID:
			s = "00:00:00+00";
			break;
		case INTERVALOID:
			s = "0";
			break;
		case BOOLOID:
			s = "false";
			break;
		case UUIDOID:
			s = "00000000-0000-0000-0000-000000000000";
			break;
		case BYTEAOID:
			s = "";
			break;
		case JSONOID:
		case JSONBOID:
			s = "{}";
			break;
		default:
			if (category == TYPCATEGORY_NUMERIC)
				s = "0";
			else if (category == TYPCATEGORY_ARRAY)
				s = "{}";
			else if (category == TYPCATEGORY_STRING)
			{
				int			n = strlen(MASK_REDACTED);

				/* varchar(n), char(n): no longer than declared */
				if ((base == VARCHAROID || base == BPCHAROID) &&
					btypmod >= (int32) VARHDRSZ && btypmod - (int32) VARHDRSZ < n)
					n = btypmod - VARHDRSZ;
				memcpy(buf, MASK_REDACTED, n);
				buf[n] = '\0';
				s = buf;
			}
			break;
	}
	if (s == NULL)
		return makeNullConst(typid, typmod, collid);
	get_typlenbyval(typid, &typlen, &typbyval);
	getTypeInputInfo(base, &typinput, &typioparam);
	d = OidInputFunctionCall(typinput, (char *) s, typioparam, btypmod);
	return makeConst(typid, typmod, collid, typlen, d, false, typbyval);
}

/*
 * ag_mask_function_problem says why funcid cannot mask a column of type
 * typid, or returns NULL when it can: it must be a plain function of one
 * argument of that type returning that type, IMMUTABLE, not returning a
 * set, owned by a superuser (an owner who is not could change what it
 * computes) and with its own search_path (so a caller's cannot change what
 * its body means).  NULL-safety is not its business: a function that is
 * not STRICT is called only for values that are not NULL.
 */
char *
ag_mask_function_problem(Oid funcid, Oid typid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	char	   *problem = NULL;
	bool		isnull;
	Datum		config;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return psprintf("function with OID %u does not exist", funcid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prokind != PROKIND_FUNCTION || proc->proretset)
		problem = "it is not a plain function returning one value";
	else if (proc->pronargs != 1 || proc->proargtypes.values[0] != typid ||
			 proc->prorettype != typid)
		problem = psprintf("it must take and return the column's type, %s",
						   format_type_be(typid));
	else if (proc->provolatile != PROVOLATILE_IMMUTABLE)
		problem = "it is not IMMUTABLE";
	else if (!superuser_arg(proc->proowner))
		problem = "its owner is not a superuser";
	else
	{
		bool		pinned = false;

		config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(config);
			Datum	   *elems;
			bool	   *nulls;
			int			n,
						i;

			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &n);
			for (i = 0; i < n; i++)
				if (!nulls[i] &&
					strncmp(TextDatumGetCString(elems[i]), "search_path=", 12) == 0)
					pinned = true;
		}
		if (!pinned)
			problem = "it has no search_path of its own (SET search_path = ...)";
	}
	ReleaseSysCache(tup);
	return problem;
}

/* arg read as text: a relabelling, as every accepted type is a varlena */
static Expr *
as_text(Expr *arg, Oid collid)
{
	if (exprType((Node *) arg) == TEXTOID)
		return arg;
	return (Expr *) makeRelabelType(arg, TEXTOID, -1, collid, COERCE_IMPLICIT_CAST);
}

/* CASE WHEN arg IS NULL THEN NULL ELSE e END */
static Expr *
null_or(Expr *arg, const AgMaskCol *col, Expr *e)
{
	CaseExpr   *c = makeNode(CaseExpr);
	CaseWhen   *w = makeNode(CaseWhen);
	NullTest   *nt = makeNode(NullTest);

	nt->arg = arg;
	nt->nulltesttype = IS_NULL;
	nt->argisrow = false;
	nt->location = -1;
	w->expr = (Expr *) nt;
	w->result = (Expr *) makeNullConst(col->typid, col->typmod, col->collid);
	w->location = -1;
	c->casetype = col->typid;
	c->casecollid = col->collid;
	c->args = list_make1(w);
	c->defresult = e;
	c->location = -1;
	return (Expr *) c;
}

/*
 * ag_mask_expr: the expression a governed session reads instead of arg (a
 * Var of the masked column).  Its type, typmod and collation are the
 * column's, so whatever referred to the column still type-checks.
 */
Expr *
ag_mask_expr(const AgMaskCol *col, Expr *arg)
{
	Oid			collid = OidIsValid(col->collid) ? col->collid : DEFAULT_COLLATION_OID;
	FuncExpr   *f;

	switch (col->method)
	{
		case AG_MASK_NULL:
			return (Expr *) copyObject(col->konst);
		case AG_MASK_REDACT:
			/* NULL stays NULL; a NOT NULL column's mask is the constant */
			if (col->notnull || col->konst->constisnull)
				return (Expr *) copyObject(col->konst);
			return null_or(arg, col, (Expr *) copyObject(col->konst));
		case AG_MASK_PARTIAL:
		case AG_MASK_EMAIL:
		case AG_MASK_HASH:
			f = makeFuncExpr(col->funcid, TEXTOID, list_make1(as_text(arg, collid)),
							 collid, collid, COERCE_EXPLICIT_CALL);
			if (col->typid == TEXTOID)
				return (Expr *) f;
			return (Expr *) makeRelabelType((Expr *) f, col->typid, col->typmod,
											col->collid, COERCE_IMPLICIT_CAST);
		case AG_MASK_FUNCTION:
			f = makeFuncExpr(col->funcid, col->typid, list_make1(arg),
							 col->collid, col->collid, COERCE_EXPLICIT_CALL);
			if (!col->strict)
				return null_or((Expr *) copyObject(arg), col, (Expr *) f);
			return (Expr *) f;
	}
	elog(ERROR, "agentgate: unknown mask method %d", (int) col->method);
	return NULL;				/* keep compiler quiet */
}
