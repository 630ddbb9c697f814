/*-------------------------------------------------------------------------
 *
 * conffile.c
 *	  Read a configuration file into a program's configuration struct, by
 *	  a table of keys (see ag_conffile.h).  Shared by agentgate-proxy and
 *	  agentgate-connect.
 *
 *-------------------------------------------------------------------------
 */
#include "ag_conffile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* on/off and the spellings PostgreSQL also takes; -1 for anything else */
static int
parse_bool(const char *v)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};
	size_t		i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
	{
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

static int
set_value(void *cfg, const ag_conf_key *k, const char *value,
		  char *err, size_t errlen)
{
	char	   *base = (char *) cfg;

	if (k->type == AG_CONF_STR)
	{
		char	  **slot = (char **) (base + k->offset);

		free(*slot);
		*slot = (value[0] != '\0') ? strdup(value) : NULL;
		return 0;
	}
	else if (k->type == AG_CONF_BOOL)
	{
		int			b = parse_bool(value);

		if (b < 0)
		{
			snprintf(err, errlen, "invalid value for %s: \"%s\" (expected on or off)",
					 k->name, value);
			return -1;
		}
		*(int *) (base + k->offset) = b;
		return 0;
	}
	else
	{
		char	   *end;
		long		v;

		errno = 0;
		v = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || v < k->min || v > k->max)
		{
			snprintf(err, errlen, "invalid value for %s: \"%s\" (expected an integer from %ld to %ld)",
					 k->name, value, k->min, k->max);
			return -1;
		}
		*(int *) (base + k->offset) = (int) v;
		return 0;
	}
}

void
ag_conf_free_strings(void *cfg, const ag_conf_key *keys, size_t nkeys)
{
	size_t		i;

	for (i = 0; i < nkeys; i++)
		if (keys[i].type == AG_CONF_STR)
		{
			char	  **slot = (char **) ((char *) cfg + keys[i].offset);

			free(*slot);
			*slot = NULL;
		}
}

int
ag_conf_parse_line(char *line, char **key, char **value, const char **why)
{
	char	   *p = line;
	char	   *k;
	char	   *out;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0' || *p == '#')
		return 1;
	k = p;
	while (isalnum((unsigned char) *p) || *p == '_')
		p++;
	if (p == k)
	{
		*why = "expected a key";
		return -1;
	}
	*key = k;
	if (*p != '\0' && !isspace((unsigned char) *p) && *p != '=')
	{
		*why = "invalid character in key";
		return -1;
	}
	if (*p != '=')
		*p++ = '\0';
	while (isspace((unsigned char) *p))
		p++;
	if (*p != '=')
	{
		*why = "expected '='";
		return -1;
	}
	*p++ = '\0';
	while (isspace((unsigned char) *p))
		p++;

	if (*p == '\'')
	{
		/* quoted: '' is a quote, anything after the closing quote a comment */
		out = *value = ++p;
		for (;;)
		{
			if (*p == '\0')
			{
				*why = "unterminated quoted value";
				return -1;
			}
			if (*p == '\'' && p[1] == '\'')
			{
				*out++ = '\'';
				p += 2;
				continue;
			}
			if (*p == '\'')
				break;
			*out++ = *p++;
		}
		*out = '\0';
		p++;
		while (isspace((unsigned char) *p))
			p++;
		if (*p != '\0' && *p != '#')
		{
			*why = "unexpected text after quoted value";
			return -1;
		}
		return 0;
	}

	*value = p;
	/* unquoted: up to a comment, trailing blanks removed */
	while (*p && *p != '#')
		p++;
	*p = '\0';
	while (p > *value && isspace((unsigned char) p[-1]))
		*--p = '\0';
	return 0;
}

int
ag_conf_load(void *cfg, const ag_conf_key *keys, size_t nkeys,
			 const char *path, char *err, size_t errlen)
{
	FILE	   *f;
	char		line[4096];
	int			lineno = 0;
	size_t		i;

	for (i = 0; i < nkeys; i++)
		if (keys[i].def && set_value(cfg, &keys[i], keys[i].def, err, errlen) < 0)
			return -1;

	f = fopen(path, "r");
	if (f == NULL)
	{
		snprintf(err, errlen, "could not open \"%s\": %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f))
	{
		char	   *key = NULL;
		char	   *value = NULL;
		const char *why = NULL;
		char		why2[512];
		int			rc;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f))
		{
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			fclose(f);
			return -1;
		}
		rc = ag_conf_parse_line(line, &key, &value, &why);
		if (rc == 1)
			continue;
		if (rc < 0)
		{
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			fclose(f);
			return -1;
		}
		for (i = 0; i < nkeys; i++)
			if (strcmp(keys[i].name, key) == 0)
				break;
		if (i == nkeys)
		{
			snprintf(err, errlen, "%s:%d: unknown key \"%.64s\"", path, lineno, key);
			fclose(f);
			return -1;
		}
		if (set_value(cfg, &keys[i], value, why2, sizeof(why2)) < 0)
		{
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why2);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}
