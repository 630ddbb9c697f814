/*
 * patterns_test.c
 *	  Unit tests of the content patterns (patterns.c): each built-in pattern
 *	  with text it must mask and text it must leave alone (Luhn and IBAN
 *	  failures included), validators on their own, overlapping matches,
 *	  a pattern subset, compile errors, and input that once took other
 *	  matchers exponential time.
 */
#include "ag_patterns.h"
#include "ag_pattern_defs.h"
#include "ag_test.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static ag_patterns *builtins;

/* in with the built-ins applied, as a string (static buffer). */
static const char *
masked(ag_patterns *p, const uint8_t *active, const char *in)
{
	static char res[65536];
	ag_buf		out = {0};
	int			rc = ag_patterns_apply(p, active, (const uint8_t *) in, strlen(in), &out);

	if (rc < 0)
		snprintf(res, sizeof(res), "<error>");
	else if (rc == 0)
		snprintf(res, sizeof(res), "%s", in);
	else
		snprintf(res, sizeof(res), "%.*s", (int) out.len, (const char *) out.data + out.off);
	ag_buf_free(&out);
	return res;
}

static void
expect(const char *in, const char *want)
{
	const char *got = masked(builtins, NULL, in);

	ok(strcmp(got, want) == 0, "\"%s\" -> \"%s\", want \"%s\"", in, got, want);
}

static void
unchanged(const char *in)
{
	expect(in, in);
}

static void
test_builtins(void)
{
	/* card numbers: Visa test number, Amex, spaced, dashed, inside text */
	expect("4111111111111111", "[card]");
	expect("card 4111 1111 1111 1111 exp 12/29", "card [card] exp 12/29");
	expect("4111-1111-1111-1111", "[card]");
	expect("amex 378282246310005.", "amex [card].");
	expect("order 12 4111 1111 1111 1111", "order 12 [card]");
	expect("4111111111111111,5500000000000004", "[card],[card]");
	unchanged("4111111111111112");	/* Luhn fails */
	unchanged("1733400000001");	/* epoch milliseconds: no card starts with 1 */
	expect("order 12 5500 0000 0000 0004 x", "order 12 [card] x");
	unchanged("order 1234567890");	/* too short */
	unchanged("41111111111111111111111");	/* a longer number */
	unchanged("id 12345678901234567890123456");

	/* US SSNs */
	expect("ssn 123-45-6789 on file", "ssn [ssn] on file");
	unchanged("000-12-3456");
	unchanged("666-12-3456");
	unchanged("912-34-5678");
	unchanged("123-00-4567");
	unchanged("123-45-0000");
	unchanged("1234-56-7890");

	/* e-mail */
	expect("write to jane.doe+x@example.co.uk now", "write to [email] now");
	expect("a@b.io,c@d.org", "[email],[email]");
	unchanged("not an address: foo@bar");
	unchanged("user@localhost");

	/* JWT */
	expect("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
		   "Bearer [jwt]");
	unchanged("eyJ alone");

	/* AWS */
	expect("key=AKIAIOSFODNN7EXAMPLE;", "key=[aws-key];");
	expect("ASIAY34FZKBOKMUTVV7A", "[aws-key]");
	unchanged("AKIAshort");
	unchanged("XAKIAIOSFODNN7EXAMPLE");

	/* PEM private keys, whole and truncated */
	expect("k: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY----- done",
		   "k: [private-key] done");
	expect("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq", "[private-key]");
	unchanged("-----BEGIN CERTIFICATE-----\nMIIB");

	/* API keys */
	expect("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[api-key]");
	expect("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok", "token [api-key] ok");
	expect("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[api-key]");
	expect("xoxb-123456789012-abcdefghijkl", "[api-key]");
	expect("xoxp-123456789012-abcdefghijkl", "[api-key]");
	expect("sk_test_abcdefghij1234", "[api-key]");
	unchanged("sk_live_short");
	unchanged("task_live_abcdefghijklmnopqrst");

	/* IBANs, compact and grouped; a wrong check digit is left alone */
	expect("DE89370400440532013000", "[iban]");
	expect("iban: GB82 WEST 1234 5698 7654 32.", "iban: [iban].");
	expect("FR1420041010050500013M02606", "[iban]");
	unchanged("DE89370400440532013001");
	unchanged("GB82 WEST 1234 5698 7654 33");

	/* several in one value */
	expect("jane@example.com paid with 4111111111111111 (ssn 123-45-6789)",
		   "[email] paid with [card] (ssn [ssn])");
	unchanged("");
	unchanged("nothing to see here");
}

static void
test_validators(void)
{
	ok(ag_pattern_luhn_ok("4111111111111111"), "luhn ok");
	ok(ag_pattern_luhn_ok("79927398713"), "luhn ok 2");
	ok(!ag_pattern_luhn_ok("79927398710"), "luhn fails");
	ok(!ag_pattern_luhn_ok("4x11"), "luhn non-digit");
	ok(ag_pattern_iban_ok("DE89370400440532013000"), "iban ok");
	ok(ag_pattern_iban_ok("GB82WEST12345698765432"), "iban ok GB");
	ok(!ag_pattern_iban_ok("GB82WEST12345698765433"), "iban fails");
	ok(!ag_pattern_iban_ok("DE89"), "iban short");
}

static void
test_subset_and_custom(void)
{
	uint8_t		active[AG_PATTERN_NBUILTINS];
	size_t		i;
	ag_pattern_def defs[2] = {
		{"order_ref", "ORD-[0-9]{6}", "[order]", NULL},
		{"email", "[a-z]+@[a-z]+\\.com", "[mail]", NULL},
	};
	char		err[256];
	ag_patterns *p;

	/* only e-mail active: the card stays */
	for (i = 0; i < AG_PATTERN_NBUILTINS; i++)
		active[i] = strcmp(ag_pattern_builtins[i].name, "email") == 0;
	ok(strcmp(masked(builtins, active, "a@b.com 4111111111111111"),
			  "[email] 4111111111111111") == 0, "subset applies only active patterns");

	p = ag_patterns_compile(defs, 2, err, sizeof(err));
	ok(p != NULL, "custom set compiles: %s", p ? "" : err);
	if (p)
	{
		ok(strcmp(masked(p, NULL, "see ORD-123456 and bob@x.com"),
				  "see [order] and [mail]") == 0, "custom patterns");
		/* overlapping matches of two patterns: the union goes */
		ag_patterns_free(p);
	}
	{
		ag_pattern_def ov[2] = {
			{"a", "abc", "[A]", NULL},
			{"b", "bcdef", "[B]", NULL},
		};

		p = ag_patterns_compile(ov, 2, err, sizeof(err));
		ok(p && strcmp(masked(p, NULL, "xabcdefy"), "x[A]y") == 0, "overlap: union replaced once");
		ag_patterns_free(p);
	}

	/* an empty set matches nothing */
	p = ag_patterns_compile(NULL, 0, err, sizeof(err));
	ok(p != NULL && strcmp(masked(p, NULL, "4111111111111111"), "4111111111111111") == 0,
	   "empty set");
	ag_patterns_free(p);
}

static void
test_refused(void)
{
	char		err[256];
	ag_pattern_def bad[] = {
		{"backref", "(a)\\1", "x", NULL},
		{"empty", "a*", "x", NULL},
		{"lookahead", "a(?=b)", "x", NULL},
	};
	ag_pattern_def badrep[] = {
		{"tab", "abc", "a\tb", NULL},
		{"comma", "abc", "a,b", NULL},
		{"empty", "abc", "", NULL},
	};
	ag_pattern_def badval = {"v", "abc", "x", "crc32"};
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		ag_patterns *p = ag_patterns_compile(&bad[i], 1, err, sizeof(err));

		ok(p == NULL && strstr(err, bad[i].name) != NULL, "regex %s refused (%s)", bad[i].name, err);
		ag_patterns_free(p);
	}
	for (i = 0; i < sizeof(badrep) / sizeof(badrep[0]); i++)
	{
		ag_patterns *p = ag_patterns_compile(&badrep[i], 1, err, sizeof(err));

		ok(p == NULL, "replacement %s refused", badrep[i].name);
		ag_patterns_free(p);
	}
	ok(ag_patterns_compile(&badval, 1, err, sizeof(err)) == NULL, "unknown validator refused");
}

/* Input shaped to make backtracking matchers blow up stays linear. */
static void
test_linear(void)
{
	size_t		n = 4 * 1024 * 1024;
	char	   *big = malloc(n + 1);
	ag_buf		out = {0};
	clock_t		t0;
	double		secs;
	size_t		i;

	for (i = 0; i < n; i++)
		big[i] = "1 1-a@a.a"[i % 9];
	big[n] = '\0';
	t0 = clock();
	ok(ag_patterns_apply(builtins, NULL, (const uint8_t *) big, n, &out) >= 0, "big input scanned");
	secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
	ok(secs < 5.0, "4 MiB of near-matches in %.2f s", secs);
	ag_buf_free(&out);

	/* more separate matches than are kept: the value is replaced whole */
	for (i = 0; i < n; i++)
		big[i] = "a@b.io "[i % 7];
	ok(ag_patterns_apply(builtins, NULL, (const uint8_t *) big, n, &out) == 1 &&
	   out.len == strlen("[email]") && memcmp(out.data + out.off, "[email]", 7) == 0,
	   "too many matches: the whole value replaced");
	ag_buf_free(&out);

	memset(big, '4', n);
	t0 = clock();
	ok(ag_patterns_apply(builtins, NULL, (const uint8_t *) big, n, &out) >= 0, "digits scanned");
	secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
	ok(secs < 5.0, "4 MiB of digits in %.2f s", secs);
	ag_buf_free(&out);
	free(big);
}

int
main(void)
{
	char		err[256];

	builtins = ag_patterns_builtins(err, sizeof(err));
	ok(builtins != NULL, "built-ins compile: %s", builtins ? "" : err);
	if (builtins == NULL)
		return ag_test_report();
	test_builtins();
	test_validators();
	test_subset_and_custom();
	test_refused();
	test_linear();
	ag_patterns_free(builtins);
	return ag_test_report();
}
