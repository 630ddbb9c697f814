/*-------------------------------------------------------------------------
 *
 * ag_patterns.h
 *	  Content patterns: a set of regexes compiled once into one Hyperscan
 *	  database and applied to text, each match replaced.
 *
 * The text comes from the data an agent reads, so the matcher must not be
 * one the data can slow down: Hyperscan runs in time linear in the input,
 * has no backtracking, and scans for every pattern of the set in one pass.
 * Hyperscan reports, for each pattern, every end offset with its leftmost
 * start; overlapping reports of one pattern are merged as they come, so
 * memory stays proportional to the number of separate matches.  A pattern
 * with a validator (ag_pattern_defs.h) keeps only the parts of its matches
 * that pass the check (Luhn, mod 97...).  Finally the matches of all the
 * patterns are merged where they overlap (the union is replaced, with the
 * replacement of the leftmost, longest one), and the text is rewritten.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_PATTERNS_H
#define AG_PATTERNS_H

#include <stddef.h>
#include <stdint.h>

#include "ag_pgstream.h"

/*
 * Separate matches kept per value: a value with more is replaced whole (with
 * the replacement of the pattern that overflowed), so that no value can make
 * the proxy hold matches in proportion to its size.
 */
#define AG_PATTERN_MAX_MATCHES	65536

typedef struct ag_pattern_def
{
	const char *name;
	const char *regex;
	const char *replacement;
	const char *validator;		/* NULL: none */
} ag_pattern_def;

typedef struct ag_patterns ag_patterns;

/*
 * Compile a set (n may be 0).  NULL on failure, with the reason (and the
 * pattern's name) in err.
 */
extern ag_patterns *ag_patterns_compile(const ag_pattern_def *defs, int n,
										char *err, size_t errlen);
/* The built-in patterns (ag_pattern_defs.h) alone, in their order. */
extern ag_patterns *ag_patterns_builtins(char *err, size_t errlen);
extern void ag_patterns_free(ag_patterns *p);
extern int	ag_patterns_count(const ag_patterns *p);
extern const char *ag_patterns_name(const ag_patterns *p, int i);

/*
 * Apply the patterns whose active[i] is nonzero (NULL: all) to in.
 * 0: nothing matched, out is untouched; 1: the rewritten text was appended
 * to out; -1: out of memory or the scan failed (the caller fails closed).
 */
extern int	ag_patterns_apply(ag_patterns *p, const uint8_t *active,
							  const uint8_t *in, size_t len, ag_buf *out);

/* The validators alone (for tests): does the whole text pass? */
extern int	ag_pattern_luhn_ok(const char *digits);
extern int	ag_pattern_iban_ok(const char *iban);

#endif							/* AG_PATTERNS_H */
