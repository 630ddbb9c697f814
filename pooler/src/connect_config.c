/*-------------------------------------------------------------------------
 *
 * connect_config.c
 *	  Parse and validate the agentgate-connect configuration file.
 *
 * The same format as agentgate-proxy's: `key = value` lines, `#` comments,
 * values optionally in single quotes ('' inside quotes is one quote).
 * Unknown keys are errors.
 *
 *-------------------------------------------------------------------------
 */
#include "connect_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum
{
	K_STR,
	K_INT
} key_type;

typedef struct key_def
{
	const char *name;
	key_type	type;
	size_t		offset;
	const char *def;			/* default as text; NULL = unset */
	long		min;
	long		max;
} key_def;

#define S(f, d)			{#f, K_STR, offsetof(ag_connect_config, f), d, 0, 0}
#define I(f, d, lo, hi) {#f, K_INT, offsetof(ag_connect_config, f), d, lo, hi}

static const key_def keys[] = {
	S(listen_socket_dir, NULL),
	I(listen_port, "6432", 1, 65535),
	I(listen_tcp_port, "0", 0, 65535),
	S(allowed_users, NULL),
	I(max_clients, "100", 1, 100000),
	S(proxy_host, NULL),
	I(proxy_port, "6432", 1, 65535),
	S(sslmode, "verify-full"),
	S(ca_file, NULL),
	S(tls_server_name, NULL),
	S(token_file, NULL),
	S(token_command, NULL),
	I(token_refresh_margin, "60", 1, 86400),
	I(command_timeout, "10", 1, 600),
	I(connect_timeout, "10", 1, 600),
	S(user, "agent"),
	S(database, NULL),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int
set_value(ag_connect_config *cfg, const key_def *k, const char *value,
		  char *err, size_t errlen)
{
	char	   *base = (char *) cfg;

	if (k->type == K_STR)
	{
		char	  **slot = (char **) (base + k->offset);

		free(*slot);
		*slot = (value[0] != '\0') ? strdup(value) : NULL;
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
ag_connect_config_free(ag_connect_config *cfg)
{
	size_t		i;

	if (cfg == NULL)
		return;
	for (i = 0; i < NKEYS; i++)
		if (keys[i].type == K_STR)
			free(*(char **) ((char *) cfg + keys[i].offset));
	free(cfg);
}

/* Split one line into key and value; 0 = ok, 1 = blank, -1 = error. */
static int
parse_line(char *line, char **key, char **value, const char **why)
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

static int
validate(const ag_connect_config *cfg, char *err, size_t errlen)
{
	if (cfg->listen_socket_dir == NULL)
	{
		snprintf(err, errlen, "listen_socket_dir is required");
		return -1;
	}
	if (strlen(cfg->listen_socket_dir) > 80)
	{
		snprintf(err, errlen, "listen_socket_dir is too long for a unix socket path");
		return -1;
	}
	if (cfg->proxy_host == NULL)
	{
		snprintf(err, errlen, "proxy_host is required");
		return -1;
	}
	if ((cfg->token_file == NULL) == (cfg->token_command == NULL))
	{
		snprintf(err, errlen, "exactly one of token_file and token_command is required");
		return -1;
	}
	if (cfg->sslmode == NULL ||
		(strcmp(cfg->sslmode, "verify-full") != 0 && strcmp(cfg->sslmode, "verify-ca") != 0 &&
		 strcmp(cfg->sslmode, "require") != 0))
	{
		snprintf(err, errlen, "sslmode must be verify-full, verify-ca or require");
		return -1;
	}
	if (strcmp(cfg->sslmode, "require") != 0 && cfg->ca_file == NULL)
	{
		snprintf(err, errlen, "ca_file is required with sslmode = %s", cfg->sslmode);
		return -1;
	}
	if (cfg->user == NULL || strlen(cfg->user) > 63)
	{
		snprintf(err, errlen, "user must be 1 to 63 bytes");
		return -1;
	}
	return 0;
}

ag_connect_config *
ag_connect_config_load(const char *path, char *err, size_t errlen)
{
	ag_connect_config *cfg;
	FILE	   *f;
	char		line[4096];
	int			lineno = 0;
	size_t		i;

	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < NKEYS; i++)
		if (keys[i].def && set_value(cfg, &keys[i], keys[i].def, err, errlen) < 0)
			goto fail;

	f = fopen(path, "r");
	if (f == NULL)
	{
		snprintf(err, errlen, "could not open \"%s\": %s", path, strerror(errno));
		goto fail;
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
			goto fail;
		}
		rc = parse_line(line, &key, &value, &why);
		if (rc == 1)
			continue;
		if (rc < 0)
		{
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			fclose(f);
			goto fail;
		}
		for (i = 0; i < NKEYS; i++)
			if (strcmp(keys[i].name, key) == 0)
				break;
		if (i == NKEYS)
		{
			snprintf(err, errlen, "%s:%d: unknown key \"%.64s\"", path, lineno, key);
			fclose(f);
			goto fail;
		}
		if (set_value(cfg, &keys[i], value, why2, sizeof(why2)) < 0)
		{
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why2);
			fclose(f);
			goto fail;
		}
	}
	fclose(f);
	if (validate(cfg, err, errlen) < 0)
		goto fail;
	return cfg;

fail:
	ag_connect_config_free(cfg);
	return NULL;
}

