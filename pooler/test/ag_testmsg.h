/*-------------------------------------------------------------------------
 *
 * ag_testmsg.h
 *	  Protocol messages built up in a static buffer, for the unit tests of
 *	  the modules that read them (pgstream.c, pgfilter.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_TESTMSG_H
#define AG_TESTMSG_H

#include <stdint.h>
#include <string.h>

#include "ag_pgproto.h"

/* A message built up in a static buffer. */
typedef struct m
{
	uint8_t		b[8192];
	size_t		n;
} m;

static void __attribute__((unused))
add(m *x, const void *p, size_t n)
{
	memcpy(x->b + x->n, p, n);
	x->n += n;
}

static void __attribute__((unused))
adds(m *x, const char *s)
{
	add(x, s, strlen(s) + 1);
}

static void __attribute__((unused))
add16(m *x, int v)
{
	uint8_t		b[2] = {(uint8_t) (v >> 8), (uint8_t) v};

	add(x, b, 2);
}

static void __attribute__((unused))
add32(m *x, uint32_t v)
{
	uint8_t		b[4];

	ag_pg_put32(b, v);
	add(x, b, 4);
}

/* Append message type t with body to x. */
static void __attribute__((unused))
msg(m *x, char t, const m *body)
{
	uint8_t		c = (uint8_t) t;

	add(x, &c, 1);
	add32(x, (uint32_t) (4 + body->n));
	add(x, body->b, body->n);
}

#endif							/* AG_TESTMSG_H */
