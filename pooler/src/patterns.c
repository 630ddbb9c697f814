/*-------------------------------------------------------------------------
 *
 * patterns.c
 *	  Content patterns compiled into one Hyperscan database and applied to
 *	  text (see ag_patterns.h for the why).
 *
 * A validator looks inside a matched region for the parts that pass its
 * check, because Hyperscan reports only the leftmost start of each match:
 * in "order 12 4111 1111 1111 1111" the card pattern's one report starts
 * at "12", and the Luhn check of that whole run fails while the card
 * within it passes.  So each validator walks the region from every place
 * a match may start (the start of a digit run, of a word) and keeps the
 * longest part that passes, in time linear in the region: the checks are
 * kept up to date digit by digit.
 *
 * Most values match nothing, and reporting match starts makes Hyperscan
 * about twice as slow, so each value is first scanned by a database of the
 * same patterns without starts that stops at the first match; only a value
 * that matches is scanned again for the matches' places.  The patterns
 * whose validator needs digits (Luhn: 13, SSN: 9) are in a database of
 * their own, scanned only when the value has that many digits.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_patterns.h"
#include "ag_pattern_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum
{
	V_NONE, V_LUHN, V_IBAN, V_SSN
} validator;

typedef struct span
{
	size_t		from;
	size_t		to;
	int			id;
} span;

typedef struct entry
{
	char	   *name;
	char	   *replacement;
	size_t		replen;
	validator	v;
	/* the scan that last reported a match of it, and that match */
	uint64_t	gen;
	size_t		last;
} entry;

struct ag_patterns
{
	int			n;
	entry	   *e;
	hs_database_t *db;			/* every pattern, with match starts */
	hs_database_t *fast;		/* the others, first match only */
	hs_database_t *gated;		/* those whose validator needs digits */
	hs_scratch_t *scratch;		/* big enough for all three */
	uint64_t	gen;
	/* reused between scans */
	span	   *raw;
	size_t		nraw;
	size_t		capraw;
	span	   *cand;
	size_t		ncand;
	size_t		capcand;
	int			nomem;
	int			overflow;		/* the pattern (+1) whose matches overflowed */
	int			hit;			/* a first-match scan found one */
	const uint8_t *active;
};

static validator
validator_of(const char *v)
{
	if (v == NULL)
		return V_NONE;
	if (strcmp(v, "luhn") == 0)
		return V_LUHN;
	if (strcmp(v, "iban") == 0)
		return V_IBAN;
	return V_SSN;
}

void
ag_patterns_free(ag_patterns *p)
{
	int			i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
	{
		free(p->e[i].name);
		free(p->e[i].replacement);
	}
	free(p->e);
	if (p->scratch)
		hs_free_scratch(p->scratch);
	if (p->db)
		hs_free_database(p->db);
	if (p->fast)
		hs_free_database(p->fast);
	if (p->gated)
		hs_free_database(p->gated);
	free(p->raw);
	free(p->cand);
	free(p);
}

/* Digits a value needs before the gated patterns can match (SSN's 9). */
#define GATE_DIGITS		9

static int
needs_digits(validator v)
{
	return v == V_LUHN || v == V_SSN;
}

/*
 * Compile patterns of defs with hsflags into *db and grow the scratch to
 * fit it: all of them (gated -1), or those whose validator needs digits
 * (gated 1) or does not (gated 0); none: *db stays NULL.  -1 with err set.
 */
static int
compile_some(ag_patterns *p, const ag_pattern_def *defs, int n, unsigned int hsflags,
			 int gated, hs_database_t **db, char *err, size_t errlen)
{
	const char **exprs = calloc(n, sizeof(char *));
	unsigned int *flags = calloc(n, sizeof(unsigned int));
	unsigned int *ids = calloc(n, sizeof(unsigned int));
	hs_compile_error_t *cerr = NULL;
	unsigned int k = 0;
	int			i;
	int			rc = -1;

	if (exprs == NULL || flags == NULL || ids == NULL)
	{
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++)
	{
		if (gated >= 0 && needs_digits(p->e[i].v) != gated)
			continue;
		exprs[k] = defs[i].regex;
		flags[k] = hsflags;
		ids[k] = (unsigned int) i;
		k++;
	}
	if (k == 0)
	{
		rc = 0;
		goto done;
	}
	if (hs_compile_multi(exprs, flags, ids, k, AG_PATTERN_HS_MODE, NULL, db, &cerr) != HS_SUCCESS)
	{
		if (cerr && cerr->expression >= 0 && (unsigned int) cerr->expression < k)
			snprintf(err, errlen, "pattern \"%s\": %s", defs[ids[cerr->expression]].name,
					 cerr->message);
		else
			snprintf(err, errlen, "could not compile the patterns: %s",
					 cerr ? cerr->message : "unknown error");
		hs_free_compile_error(cerr);
		goto done;
	}
	if (hs_alloc_scratch(*db, &p->scratch) != HS_SUCCESS)
	{
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = 0;
done:
	free(exprs);
	free(flags);
	free(ids);
	return rc;
}

ag_patterns *
ag_patterns_compile(const ag_pattern_def *defs, int n, char *err, size_t errlen)
{
	ag_patterns *p = calloc(1, sizeof(*p));
	int			i;

	if (p == NULL)
		goto nomem;
	if (n < 0 || n > AG_PATTERN_MAX_COUNT)
	{
		snprintf(err, errlen, "too many patterns (at most %d)", AG_PATTERN_MAX_COUNT);
		goto fail;
	}
	if (hs_valid_platform() != HS_SUCCESS)
	{
		snprintf(err, errlen, "this CPU cannot run Hyperscan (SSSE3 is required)");
		goto fail;
	}
	p->e = calloc(n > 0 ? n : 1, sizeof(entry));
	if (p->e == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
	{
		const char *why = ag_pattern_replacement_problem(defs[i].replacement);

		if (why != NULL || !ag_pattern_validator_known(defs[i].validator))
		{
			snprintf(err, errlen, "pattern \"%s\": %s", defs[i].name,
					 why ? why : "unknown validator");
			goto fail;
		}
		p->e[i].name = strdup(defs[i].name);
		p->e[i].replacement = strdup(defs[i].replacement);
		if (p->e[i].name == NULL || p->e[i].replacement == NULL)
			goto nomem;
		p->e[i].replen = strlen(defs[i].replacement);
		p->e[i].v = validator_of(defs[i].validator);
		p->n = i + 1;
	}
	if (n > 0 &&
		(compile_some(p, defs, n, AG_PATTERN_HS_FLAGS, -1, &p->db, err, errlen) < 0 ||
		 compile_some(p, defs, n, HS_FLAG_SINGLEMATCH, 0, &p->fast, err, errlen) < 0 ||
		 compile_some(p, defs, n, HS_FLAG_SINGLEMATCH, 1, &p->gated, err, errlen) < 0))
		goto fail;
	return p;

nomem:
	snprintf(err, errlen, "out of memory");
fail:
	ag_patterns_free(p);
	return NULL;
}

ag_patterns *
ag_patterns_builtins(char *err, size_t errlen)
{
	ag_pattern_def defs[AG_PATTERN_NBUILTINS];
	size_t		i;

	for (i = 0; i < AG_PATTERN_NBUILTINS; i++)
	{
		defs[i].name = ag_pattern_builtins[i].name;
		defs[i].regex = ag_pattern_builtins[i].regex;
		defs[i].replacement = ag_pattern_builtins[i].replacement;
		defs[i].validator = ag_pattern_builtins[i].validator;
	}
	return ag_patterns_compile(defs, (int) AG_PATTERN_NBUILTINS, err, errlen);
}

int
ag_patterns_count(const ag_patterns *p)
{
	return p ? p->n : 0;
}

const char *
ag_patterns_name(const ag_patterns *p, int i)
{
	return (p && i >= 0 && i < p->n) ? p->e[i].name : NULL;
}

static int
span_push(span **v, size_t *n, size_t *cap, size_t from, size_t to, int id)
{
	if (*n == *cap)
	{
		size_t		c = *cap ? *cap * 2 : 32;
		span	   *nv = realloc(*v, c * sizeof(span));

		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = c;
	}
	(*v)[*n].from = from;
	(*v)[*n].to = to;
	(*v)[*n].id = id;
	(*n)++;
	return 0;
}

/*
 * Hyperscan's match callback.  Reports come in order of end offset; one
 * that overlaps the pattern's previous report extends it.
 */
static int
on_match(unsigned int id, unsigned long long from, unsigned long long to,
		 unsigned int hsflags, void *arg)
{
	ag_patterns *p = arg;
	entry	   *e = &p->e[id];

	if (p->active && !p->active[id])
		return 0;
	if (e->gen == p->gen && from < p->raw[e->last].to)
	{
		span	   *s = &p->raw[e->last];

		if (from < s->from)
			s->from = (size_t) from;
		if (to > s->to)
			s->to = (size_t) to;
		return 0;
	}
	if (p->nraw >= AG_PATTERN_MAX_MATCHES)
	{
		p->overflow = (int) id + 1;
		return 1;				/* stops the scan */
	}
	if (span_push(&p->raw, &p->nraw, &p->capraw, (size_t) from, (size_t) to, (int) id) < 0)
	{
		p->nomem = 1;
		return 1;
	}
	e->gen = p->gen;
	e->last = p->nraw - 1;
	return 0;
}

static int
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int
is_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

/*
 * A validator's walk from *i found its longest valid part up to best (0:
 * none): keep it and go on after it, or go on from the next byte.
 */
static int
keep_best(ag_patterns *p, size_t *i, size_t best, int id)
{
	if (best == 0)
	{
		(*i)++;
		return 0;
	}
	if (span_push(&p->cand, &p->ncand, &p->capcand, *i, best, id) < 0)
		return -1;
	*i = best;
	return 0;
}

/*
 * Luhn: from each start of a digit run that begins with 2 to 6 (the first
 * digits of the card networks' numbers), up to 19 digits with single spaces
 * or dashes between them; the longest run of 13 or more that ends where a
 * digit run ends and passes.  P is the Luhn sum with the last digit read
 * not doubled, Q the sum with it doubled: a new digit d makes (Q + d,
 * P + 2d').
 */
static int
find_luhn(ag_patterns *p, const uint8_t *t, size_t from, size_t to, int id)
{
	size_t		i = from;

	while (i < to)
	{
		size_t		j = i;
		size_t		best = 0;
		unsigned int P = 0,
					Q = 0;
		int			count = 0;

		if (t[i] < '2' || t[i] > '6' || (i > from && is_digit(t[i - 1])))
		{
			i++;
			continue;
		}
		while (j < to && count < 19)
		{
			if (is_digit(t[j]))
			{
				unsigned int d = t[j] - '0';
				unsigned int dd = d * 2 > 9 ? d * 2 - 9 : d * 2;
				unsigned int np = Q + d;

				Q = P + dd;
				P = np;
				count++;
				j++;
				if ((j == to || !is_digit(t[j])) && count >= 13 && P % 10 == 0)
					best = j;
			}
			else if ((t[j] == ' ' || t[j] == '-') && j + 1 < to && is_digit(t[j + 1]))
				j++;
			else
				break;
		}
		if (keep_best(p, &i, best, id) < 0)
			return -1;
	}
	return 0;
}

/* A letter counts as 10..35 in an IBAN's check. */
static unsigned int
iban_value(uint8_t c)
{
	return is_digit(c) ? (unsigned int) (c - '0') : (unsigned int) (c - 'A' + 10);
}

/*
 * IBAN: from each word start that reads two letters and two digits, up to
 * 34 letters and digits with single spaces between them; the longest of 15
 * or more, ending at a word end, whose check (the first four characters
 * moved to the end, letters as numbers, mod 97) is 1.  r is the rest of
 * the part read after the first four, which then count as 6 more digits.
 */
static int
find_iban(ag_patterns *p, const uint8_t *t, size_t from, size_t to, int id)
{
	size_t		i = from;

	while (i + 4 <= to)
	{
		unsigned int head;
		unsigned int r = 0;
		size_t		j = i + 4;
		size_t		best = 0;
		int			count = 4;

		if (!((i == from || t[i - 1] == ' ') && is_upper(t[i]) && is_upper(t[i + 1]) &&
			  is_digit(t[i + 2]) && is_digit(t[i + 3])))
		{
			i++;
			continue;
		}
		head = iban_value(t[i]) * 10000 + iban_value(t[i + 1]) * 100 +
			(t[i + 2] - '0') * 10 + (t[i + 3] - '0');
		while (j < to && count < 34)
		{
			if (is_digit(t[j]) || is_upper(t[j]))
			{
				unsigned int v = iban_value(t[j]);

				r = (v < 10 ? r * 10 + v : r * 100 + v) % 97;
				count++;
				j++;
				if ((j == to || t[j] == ' ') && count >= 15 &&
					((unsigned long) r * 1000000 + head) % 97 == 1)
					best = j;
			}
			else if (t[j] == ' ' && j + 1 < to && (is_digit(t[j + 1]) || is_upper(t[j + 1])))
				j++;
			else
				break;
		}
		if (keep_best(p, &i, best, id) < 0)
			return -1;
	}
	return 0;
}

/* US SSN ddd-dd-dddd: no area 000, 666 or 9xx, no group 00, no serial 0000. */
static int
find_ssn(ag_patterns *p, const uint8_t *t, size_t from, size_t to, int id)
{
	size_t		i;

	for (i = from; i + 11 <= to; i++)
	{
		const uint8_t *s = t + i;
		int			k;
		int			shape = 1;

		for (k = 0; k < 11; k++)
			if (k == 3 || k == 6 ? s[k] != '-' : !is_digit(s[k]))
				shape = 0;
		if (!shape || (i > from && is_digit(t[i - 1])) || (i + 11 < to && is_digit(t[i + 11])))
			continue;
		if (memcmp(s, "000", 3) == 0 || memcmp(s, "666", 3) == 0 || s[0] == '9' ||
			memcmp(s + 4, "00", 2) == 0 || memcmp(s + 7, "0000", 4) == 0)
			continue;
		if (span_push(&p->cand, &p->ncand, &p->capcand, i, i + 11, id) < 0)
			return -1;
		i += 10;
	}
	return 0;
}

/* The first-match scans: a hit of an active pattern stops them. */
static int
on_first(unsigned int id, unsigned long long from, unsigned long long to,
		 unsigned int hsflags, void *arg)
{
	ag_patterns *p = arg;

	if (p->active && !p->active[id])
		return 0;
	p->hit = 1;
	return 1;
}

static int
first_scan(ag_patterns *p, hs_database_t *db, const uint8_t *in, size_t len)
{
	hs_error_t	rc = hs_scan(db, (const char *) in, (unsigned int) len, 0, p->scratch,
							 on_first, p);

	return rc == HS_SUCCESS || rc == HS_SCAN_TERMINATED ? 0 : -1;
}

/* Can anything match in?  1 yes, 0 no, -1 the scan failed. */
static int
may_match(ag_patterns *p, const uint8_t *in, size_t len)
{
	p->hit = 0;
	if (p->fast && first_scan(p, p->fast, in, len) < 0)
		return -1;
	if (!p->hit && p->gated)
	{
		size_t		i;
		size_t		digits = 0;

		for (i = 0; i < len && digits < GATE_DIGITS; i++)
			digits += is_digit(in[i]);
		if (digits >= GATE_DIGITS && first_scan(p, p->gated, in, len) < 0)
			return -1;
	}
	return p->hit;
}

static int
span_cmp(const void *a, const void *b)
{
	const span *x = a;
	const span *y = b;

	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	if (x->to != y->to)
		return x->to > y->to ? -1 : 1;
	return x->id - y->id;
}

int
ag_patterns_apply(ag_patterns *p, const uint8_t *active, const uint8_t *in, size_t len,
				  ag_buf *out)
{
	size_t		i;
	size_t		pos = 0;
	int			may;

	if (p == NULL || p->db == NULL || len == 0)
		return 0;
	if (len > UINT32_MAX)
		return -1;
	p->active = active;
	if ((may = may_match(p, in, len)) <= 0)
		return may;
	p->gen++;
	p->nraw = 0;
	p->ncand = 0;
	p->nomem = 0;
	p->overflow = 0;
	if ((hs_scan(p->db, (const char *) in, (unsigned int) len, 0, p->scratch, on_match, p) !=
		 HS_SUCCESS && !p->overflow) || p->nomem)
		return -1;
	if (p->overflow)
	{
		/* so many matches that keeping them would cost too much: all goes */
		const entry *e = &p->e[p->overflow - 1];

		return ag_buf_add(out, e->replacement, e->replen) < 0 ? -1 : 1;
	}
	if (p->nraw == 0)
		return 0;

	for (i = 0; i < p->nraw; i++)
	{
		span	   *s = &p->raw[i];
		int			rc = 0;

		switch (p->e[s->id].v)
		{
			case V_NONE:
				rc = span_push(&p->cand, &p->ncand, &p->capcand, s->from, s->to, s->id);
				break;
			case V_LUHN:
				rc = find_luhn(p, in, s->from, s->to, s->id);
				break;
			case V_IBAN:
				rc = find_iban(p, in, s->from, s->to, s->id);
				break;
			case V_SSN:
				rc = find_ssn(p, in, s->from, s->to, s->id);
				break;
		}
		if (rc < 0)
			return -1;
	}
	if (p->ncand == 0)
		return 0;
	if (p->ncand > 1)
		qsort(p->cand, p->ncand, sizeof(span), span_cmp);

	/* the union of overlapping matches goes, with the first one's replacement */
	i = 0;
	while (i < p->ncand)
	{
		span		cur = p->cand[i++];
		const entry *e = &p->e[cur.id];

		while (i < p->ncand && p->cand[i].from < cur.to)
		{
			if (p->cand[i].to > cur.to)
				cur.to = p->cand[i].to;
			i++;
		}
		if (ag_buf_add(out, in + pos, cur.from - pos) < 0 ||
			ag_buf_add(out, e->replacement, e->replen) < 0)
			return -1;
		pos = cur.to;
	}
	if (ag_buf_add(out, in + pos, len - pos) < 0)
		return -1;
	return 1;
}

int
ag_pattern_luhn_ok(const char *digits)
{
	size_t		n = strlen(digits);
	unsigned int sum = 0;
	size_t		k;

	if (n == 0)
		return 0;
	for (k = 0; k < n; k++)
	{
		unsigned int d;

		if (!is_digit((uint8_t) digits[n - 1 - k]))
			return 0;
		d = (unsigned int) (digits[n - 1 - k] - '0');
		if (k % 2 == 1)
			d = d * 2 > 9 ? d * 2 - 9 : d * 2;
		sum += d;
	}
	return sum % 10 == 0;
}

int
ag_pattern_iban_ok(const char *iban)
{
	size_t		n = strlen(iban);
	unsigned int r = 0;
	size_t		k;

	if (n < 15 || n > 34)
		return 0;
	for (k = 0; k < n; k++)
	{
		uint8_t		c = (uint8_t) iban[(k + 4) % n];
		unsigned int v;

		if (!is_digit(c) && !is_upper(c))
			return 0;
		v = iban_value(c);
		r = (v < 10 ? r * 10 + v : r * 100 + v) % 97;
	}
	return r == 1;
}
