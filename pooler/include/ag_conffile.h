/*-------------------------------------------------------------------------
 *
 * ag_conffile.h
 *	  The configuration file format of agentgate-proxy and agentgate-connect:
 *	  `key = value` lines, `#` comments, values optionally in single quotes
 *	  ('' inside quotes is one quote).  Unknown keys are errors.
 *
 * A program describes its settings as a table of keys (name, type, field
 * offset, default, range) over its own configuration struct; the loader
 * sets the defaults, reads the file and fills the struct.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_CONFFILE_H
#define AG_CONFFILE_H

#include <stddef.h>

typedef enum ag_conf_type
{
	AG_CONF_STR,				/* char *, malloc'd; "" = unset (NULL) */
	AG_CONF_INT,				/* int, within [min, max] */
	AG_CONF_BOOL				/* int 0/1: on/off, true/false, yes/no, 1/0 */
} ag_conf_type;

typedef struct ag_conf_key
{
	const char *name;
	ag_conf_type type;
	size_t		offset;			/* of the field in the configuration struct */
	const char *def;			/* default as text; NULL = unset */
	long		min;
	long		max;
} ag_conf_key;

#define AG_CONF_S(T, f, d)			{#f, AG_CONF_STR, offsetof(T, f), d, 0, 0}
#define AG_CONF_I(T, f, d, lo, hi)	{#f, AG_CONF_INT, offsetof(T, f), d, lo, hi}
#define AG_CONF_B(T, f, d)			{#f, AG_CONF_BOOL, offsetof(T, f), d, 0, 1}

/*
 * Set the defaults of keys[] in cfg, then the values of the file at path.
 * 0, or -1 with the reason (path:line: ...) in err.  On error cfg may hold
 * some values: free them with ag_conf_free_strings.
 */
extern int	ag_conf_load(void *cfg, const ag_conf_key *keys, size_t nkeys,
						 const char *path, char *err, size_t errlen);

/* Free the string fields of cfg (not cfg itself). */
extern void ag_conf_free_strings(void *cfg, const ag_conf_key *keys, size_t nkeys);

/* Split one line into key and value; 0 = ok, 1 = blank, -1 = error (why). */
extern int	ag_conf_parse_line(char *line, char **key, char **value, const char **why);

#endif							/* AG_CONFFILE_H */
