/*-------------------------------------------------------------------------
 *
 * ag_pattern_defs.h
 *	  What a content pattern may be, shared by the extension (which checks
 *	  rows of agentgate.patterns when they are written) and agentgate-proxy
 *	  (which compiles and applies them): the Hyperscan flags, the named
 *	  validators, the rules for a replacement, and the built-in patterns.
 *
 * Both sides compile a regex with the same library and the same flags, so a
 * row the extension accepts is one the proxy can compile.  The built-ins are
 * defined here once: the extension inserts them (agentgate._builtin_patterns())
 * and the proxy's unit tests test them.
 *
 * Header-only (static data and inline functions): the extension is a
 * PostgreSQL module and cannot link the pooler's library.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_PATTERN_DEFS_H
#define AG_PATTERN_DEFS_H

#include <stddef.h>
#include <string.h>

#include <hs/hs.h>

/*
 * Byte semantics (no HS_FLAG_UTF8: the client's encoding need not be UTF-8,
 * and Hyperscan's UTF-8 mode requires valid UTF-8 input), match starts
 * reported (leftmost), no pattern that matches the empty string.
 */
#define AG_PATTERN_HS_FLAGS		HS_FLAG_SOM_LEFTMOST
#define AG_PATTERN_HS_MODE		HS_MODE_BLOCK

/* Limits on one pattern row. */
#define AG_PATTERN_MAX_NAME			63
#define AG_PATTERN_MAX_REGEX		4096
#define AG_PATTERN_MAX_REPLACEMENT	64
#define AG_PATTERN_MAX_COUNT		1024	/* enabled patterns in all */

/* Named checks applied to each match before it is replaced. */
#define AG_PATTERN_VALIDATORS	"luhn, iban, ssn"

static inline int
ag_pattern_validator_known(const char *v)
{
	return v == NULL || strcmp(v, "luhn") == 0 || strcmp(v, "iban") == 0 ||
		strcmp(v, "ssn") == 0;
}

/*
 * A replacement goes into every place a value can be: a DataRow column, a
 * line of COPY text or CSV, a NUL-terminated field of an ErrorResponse.  So
 * it is limited to characters that mean nothing in any of them: letters,
 * digits, space and * # _ . : - [ ] < > ( ).  Returns NULL when the
 * replacement is fine, else why not.
 */
static inline const char *
ag_pattern_replacement_problem(const char *r)
{
	size_t		n = strlen(r);
	size_t		i;

	if (n == 0)
		return "a replacement may not be empty";
	if (n > AG_PATTERN_MAX_REPLACEMENT)
		return "a replacement may have at most 64 characters";
	for (i = 0; i < n; i++)
	{
		char		c = r[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  strchr(" *#_.:-[]<>()", c) != NULL))
			return "a replacement may contain only letters, digits, space and * # _ . : - [ ] < > ( )";
	}
	return NULL;
}

typedef struct ag_pattern_builtin
{
	const char *name;
	const char *regex;
	const char *replacement;
	const char *validator;		/* NULL: none */
	const char *reason;
} ag_pattern_builtin;

/*
 * The built-in patterns, enabled by default for agentgate_agent.  Each is
 * bounded by word boundaries where the secret's format allows, so that a
 * longer token is not cut in the middle.
 */
static const ag_pattern_builtin ag_pattern_builtins[] __attribute__((unused)) = {
	{"card_number",
		"\\b[2-6](?:[ -]?\\d){12,18}\\b",
		"[card]", "luhn",
	"payment card numbers: 13 to 19 digits from 2 to 6 (the card networks' first digits), spaces or dashes between them, Luhn-checked"},
	{"us_ssn",
		"\\b\\d{3}-\\d{2}-\\d{4}\\b",
		"[ssn]", "ssn",
	"US social security numbers written ddd-dd-dddd (areas 000, 666 and 900-999 are not)"},
	{"email",
		"\\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}\\b",
		"[email]", NULL,
	"e-mail addresses"},
	{"jwt",
		"\\beyJ[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]*",
		"[jwt]", NULL,
	"JSON Web Tokens (a base64url JSON header, payload and signature)"},
	{"aws_access_key",
		"\\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\\b",
		"[aws-key]", NULL,
	"AWS access key ids (AKIA..., ASIA... and the other key prefixes)"},
	{"pem_private_key",
		"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\\s\\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\\s]*)",
		"[private-key]", NULL,
	"PEM private key blocks, and the start of a truncated one"},
	{"api_key",
		"\\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
		"|gh[pousr]_[A-Za-z0-9]{30,}"
		"|github_pat_[A-Za-z0-9_]{22,}"
		"|xox[abposr]-[A-Za-z0-9-]{10,}"
		"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
		"|glpat-[A-Za-z0-9_-]{20,}"
		"|AIza[0-9A-Za-z_-]{35})",
		"[api-key]", NULL,
	"API keys with a well-known prefix: Stripe sk_live_/sk_test_/rk_, GitHub ghp_/gho_/ghu_/ghs_/ghr_/github_pat_, Slack xoxb-/xoxp-, OpenAI/Anthropic sk-, GitLab glpat-, Google AIza"},
	{"iban",
		"\\b[A-Z]{2}\\d{2}(?: ?[A-Z0-9]){11,30}\\b",
		"[iban]", "iban",
	"IBANs, compact or in groups of four, checked with mod 97"},
};

#define AG_PATTERN_NBUILTINS	(sizeof(ag_pattern_builtins) / sizeof(ag_pattern_builtins[0]))

#endif							/* AG_PATTERN_DEFS_H */
