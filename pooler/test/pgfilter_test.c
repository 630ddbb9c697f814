/*
 * pgfilter_test.c
 *	  Unit tests of the server-side pattern filter (pgfilter.c): DataRow
 *	  values in text and binary format, NULLs, COPY text and binary,
 *	  Notice/ErrorResponse fields, notifications, lengths fixed, messages
 *	  that pass untouched, byte-at-a-time input, and the size limit.
 */
#include "ag_pgfilter.h"
#include "ag_pgproto.h"
#include "ag_pattern_defs.h"
#include "ag_test.h"
#include "ag_testmsg.h"

#include <stdlib.h>
#include <string.h>

/* RowDescription: n columns of the given types and formats. */
static void
rowdesc(m *x, int n, const uint32_t *types, const int *formats)
{
	m			b = {.n = 0};
	int			i;

	add16(&b, n);
	for (i = 0; i < n; i++)
	{
		adds(&b, "c");
		add32(&b, 0);
		add16(&b, 0);
		add32(&b, types[i]);
		add16(&b, -1);
		add32(&b, 0xFFFFFFFF);
		add16(&b, formats[i]);
	}
	msg(x, 'T', &b);
}

/* DataRow of n values (NULL pointer: SQL NULL). */
static void
datarow(m *x, int n, const char *const *vals)
{
	m			b = {.n = 0};
	int			i;

	add16(&b, n);
	for (i = 0; i < n; i++)
	{
		if (vals[i] == NULL)
			add32(&b, 0xFFFFFFFF);
		else
		{
			add32(&b, (uint32_t) strlen(vals[i]));
			add(&b, vals[i], strlen(vals[i]));
		}
	}
	msg(x, 'D', &b);
}

static void
simple(m *x, char t, const char *s)
{
	m			b = {.n = 0};

	if (s)
		add(&b, s, strlen(s));
	msg(x, t, &b);
}

/* A message whose body has embedded NULs: its length given. */
static void
rawmsg(m *x, char t, const char *s, size_t n)
{
	m			b = {.n = 0};

	add(&b, s, n);
	msg(x, t, &b);
}

static ag_patterns *set;

/* Run in through a fresh filter, whole and a byte at a time; both must agree. */
static int
run(const m *in, ag_buf *out, int on)
{
	ag_pgfilter *f = ag_pgf_new(AG_PGF_MAX_MESSAGE);
	ag_pgfilter *g = ag_pgf_new(AG_PGF_MAX_MESSAGE);
	ag_buf		o2 = {0};
	size_t		i;
	int			rc = 0;

	ag_pgf_set(f, on ? set : NULL, NULL);
	ag_pgf_set(g, on ? set : NULL, NULL);
	if (ag_pgf_from_server(f, in->b, in->n, out) != AG_PGF_OK)
		rc = -1;
	for (i = 0; i < in->n && rc == 0; i++)
		if (ag_pgf_from_server(g, in->b + i, 1, &o2) != AG_PGF_OK)
			rc = -1;
	if (rc == 0 && (o2.len != out->len || memcmp(o2.data + o2.off, out->data + out->off, out->len) != 0))
		rc = -2;
	if (!ag_pgf_at_boundary(f))
		rc = -3;
	ag_buf_free(&o2);
	ag_pgf_free(f);
	ag_pgf_free(g);
	return rc;
}

static int
same(const ag_buf *b, const m *want)
{
	return b->len == want->n && memcmp(b->data + b->off, want->b, want->n) == 0;
}

static void
test_rows(void)
{
	uint32_t	types[4] = {25, 23, 17, 3802};
	int			textf[4] = {0, 0, 0, 0};
	int			binf[4] = {1, 1, 1, 1};
	const char *row[4] = {"card 4111111111111111", "12345", NULL, "\001{\"ssn\": \"123-45-6789\"}"};
	const char *want_text[4] = {"card [card]", "12345", NULL, "\001{\"ssn\": \"[ssn]\"}"};
	const char *row_bin[4] = {"x 4111111111111111", "4111111111111111", NULL, "\001{\"e\": \"a@b.io\"}"};
	const char *want_bin[4] = {"x [card]", "4111111111111111", NULL, "\001{\"e\": \"[email]\"}"};
	m			in = {.n = 0},
				want = {.n = 0};
	ag_buf		out = {0};

	/* text format: every column scanned, whatever its type */
	rowdesc(&in, 4, types, textf);
	datarow(&in, 4, row);
	simple(&in, 'C', "SELECT 1");
	rowdesc(&want, 4, types, textf);
	datarow(&want, 4, want_text);
	simple(&want, 'C', "SELECT 1");
	ok(run(&in, &out, 1) == 0 && same(&out, &want), "text rows rewritten, lengths fixed");
	ag_buf_free(&out);

	/* binary: text and jsonb scanned, int4 (its bytes) and bytea not */
	in.n = want.n = 0;
	rowdesc(&in, 4, types, binf);
	datarow(&in, 4, row_bin);
	rowdesc(&want, 4, types, binf);
	datarow(&want, 4, want_bin);
	ok(run(&in, &out, 1) == 0 && same(&out, &want), "binary rows: text-like types only");
	ag_buf_free(&out);

	/* no RowDescription (after CommandComplete): everything scanned */
	in.n = want.n = 0;
	rowdesc(&in, 4, types, binf);
	simple(&in, 'C', "SELECT 0");
	datarow(&in, 4, row_bin);
	rowdesc(&want, 4, types, binf);
	simple(&want, 'C', "SELECT 0");
	{
		const char *w[4] = {"x [card]", "[card]", NULL, "\001{\"e\": \"[email]\"}"};

		datarow(&want, 4, w);
	}
	ok(run(&in, &out, 1) == 0 && same(&out, &want), "rows without a description: all scanned");
	ag_buf_free(&out);

	/* a statement Describe's formats are not the portal's: scanned as text */
	in.n = want.n = 0;
	rawmsg(&in, 't', "\0\0", 2);
	rowdesc(&in, 4, types, binf);
	datarow(&in, 4, row_bin);
	rawmsg(&want, 't', "\0\0", 2);
	rowdesc(&want, 4, types, binf);
	{
		const char *w[4] = {"x [card]", "[card]", NULL, "\001{\"e\": \"[email]\"}"};

		datarow(&want, 4, w);
	}
	ok(run(&in, &out, 1) == 0 && same(&out, &want), "statement Describe: formats unknown, all scanned");
	ag_buf_free(&out);

	/* patterns off: bytes pass unchanged */
	in.n = 0;
	rowdesc(&in, 4, types, textf);
	datarow(&in, 4, row);
	ok(run(&in, &out, 0) == 0 && same(&out, &in), "no patterns: unchanged");
	ag_buf_free(&out);
}

static void
test_copy_and_messages(void)
{
	m			in = {.n = 0},
				want = {.n = 0};
	ag_buf		out = {0};
	m			err = {.n = 0},
				werr = {.n = 0};
	m			note = {.n = 0},
				wnote = {.n = 0};

	/* COPY text: lines rewritten; binary COPY: not */
	rawmsg(&in, 'H', "\0\0\1\0\0", 5);
	simple(&in, 'd', "1\tjane@example.com\n");
	simple(&in, 'c', NULL);
	simple(&in, 'C', "COPY 1");
	rawmsg(&in, 'H', "\1\0\1\0\1", 5);
	simple(&in, 'd', "jane@example.com");
	rawmsg(&want, 'H', "\0\0\1\0\0", 5);
	simple(&want, 'd', "1\t[email]\n");
	simple(&want, 'c', NULL);
	simple(&want, 'C', "COPY 1");
	rawmsg(&want, 'H', "\1\0\1\0\1", 5);
	simple(&want, 'd', "jane@example.com");
	ok(run(&in, &out, 1) == 0 && same(&out, &want), "COPY text rewritten, binary not");
	ag_buf_free(&out);

	/* ErrorResponse: message and detail; severity and code untouched */
	add(&err, "SERROR", 7);
	add(&err, "C22P02", 7);
	adds(&err, "Minvalid input syntax for type integer: \"4111 1111 1111 1111\"");
	adds(&err, "Dsee 123-45-6789");
	add(&err, "", 1);
	add(&werr, "SERROR", 7);
	add(&werr, "C22P02", 7);
	adds(&werr, "Minvalid input syntax for type integer: \"[card]\"");
	adds(&werr, "Dsee [ssn]");
	add(&werr, "", 1);
	in.n = want.n = 0;
	msg(&in, 'E', &err);
	msg(&want, 'E', &werr);
	adds(&note, "SNOTICE");
	adds(&note, "Mkey AKIAIOSFODNN7EXAMPLE");
	add(&note, "", 1);
	adds(&wnote, "SNOTICE");
	adds(&wnote, "Mkey [aws-key]");
	add(&wnote, "", 1);
	msg(&in, 'N', &note);
	msg(&want, 'N', &wnote);
	{
		m			a = {.n = 0},
					wa = {.n = 0};

		add32(&a, 42);
		adds(&a, "chan");
		adds(&a, "to bob@example.org");
		add32(&wa, 42);
		adds(&wa, "chan");
		adds(&wa, "to [email]");
		msg(&in, 'A', &a);
		msg(&want, 'A', &wa);
	}
	simple(&in, 'Z', "I");
	simple(&want, 'Z', "I");
	ok(run(&in, &out, 1) == 0 && same(&out, &want), "error, notice and notification fields rewritten");
	ag_buf_free(&out);

	/* a malformed DataRow is refused, not passed */
	in.n = 0;
	rawmsg(&in, 'D', "\0\2\0\0\0\5ab", 8);
	ok(run(&in, &out, 1) == -1, "malformed DataRow refused");
	ag_buf_free(&out);
}

static void
test_limit(void)
{
	ag_pgfilter *f = ag_pgf_new(16);
	ag_buf		out = {0};
	m			in = {.n = 0};

	ag_pgf_set(f, set, NULL);
	rawmsg(&in, 'D', "\0\1\0\0\0\0200123456789abcdef", 22);
	ok(ag_pgf_from_server(f, in.b, in.n, &out) == AG_PGF_TOO_LARGE, "row over the limit refused");
	ag_pgf_free(f);
	ag_buf_free(&out);
}

int
main(void)
{
	char		err[256];

	set = ag_patterns_builtins(err, sizeof(err));
	ok(set != NULL, "built-ins compile");
	if (set == NULL)
		return ag_test_report();
	test_rows();
	test_copy_and_messages();
	test_limit();
	ag_patterns_free(set);
	return ag_test_report();
}
