/*-------------------------------------------------------------------------
 *
 * proxy_config.c
 *	  Parse and validate the agentgate-proxy configuration file.
 *
 * Format: `key = value` lines, `#` comments, values optionally in single
 * quotes ('' inside quotes is one quote).  Unknown keys are errors, so a
 * typo cannot silently leave a security setting at its default.
 *
 *-------------------------------------------------------------------------
 */
#include "proxy_config.h"

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

#define S(f, d)			{#f, K_STR, offsetof(ag_proxy_config, f), d, 0, 0}
#define I(f, d, lo, hi) {#f, K_INT, offsetof(ag_proxy_config, f), d, lo, hi}

static const key_def keys[] = {
	S(listen_addr, "127.0.0.1"),
	I(listen_port, "6432", 1, 65535),
	S(tls_cert_file, NULL),
	S(tls_key_file, NULL),
	S(tls_min_version, "TLSv1.2"),
	S(pgbouncer_socket_dir, NULL),
	I(pgbouncer_port, "6433", 1, 65535),
	S(admin_conninfo, NULL),
	I(admin_connections, "4", 1, 64),
	S(jwks_file, NULL),
	S(jwks_uri, NULL),
	S(jwks_ca_file, NULL),
	I(jwks_refresh, "300", 10, 86400),
	I(jwks_min_refetch, "30", 1, 86400),
	S(issuer, NULL),
	S(audience, NULL),
	I(leeway, "60", 0, 600),
	S(identity_claim, "sub"),
	S(groups_claim, "groups"),
	I(exp_grace, "0", 0, 86400 * 7),
	I(max_clients, "10000", 1, 1000000),
	I(max_connections, "900", 1, 1000000),
	I(max_connections_per_identity, "100", 1, 1000000),
	I(max_cancel_connections, "100", 1, 100000),
	I(cancel_rate, "10", 1, 100000),
	I(cancel_burst, "20", 1, 100000),
	I(max_startup_bytes, "10000", 64, 10000),
	I(max_message_bytes, "67108864", 1024, 1073741823),
	I(max_prepared_statements, "1000", 0, 1000000),
	I(max_prepared_bytes, "1048576", 0, 1073741823),
	I(auth_timeout, "10", 1, 600),
	I(shutdown_timeout, "30", 0, 3600),
	S(pid_file, NULL),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int
set_value(ag_proxy_config *cfg, const key_def *k, const char *value,
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
ag_proxy_config_free(ag_proxy_config *cfg)
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
validate(const ag_proxy_config *cfg, char *err, size_t errlen)
{
	const char *missing = NULL;

	if (cfg->tls_cert_file == NULL)
		missing = "tls_cert_file";
	else if (cfg->tls_key_file == NULL)
		missing = "tls_key_file";
	else if (cfg->pgbouncer_socket_dir == NULL)
		missing = "pgbouncer_socket_dir";
	else if (cfg->admin_conninfo == NULL)
		missing = "admin_conninfo";
	else if (cfg->issuer == NULL)
		missing = "issuer";
	else if (cfg->audience == NULL)
		missing = "audience";
	else if (cfg->listen_addr == NULL)
		missing = "listen_addr";
	if (missing)
	{
		snprintf(err, errlen, "%s is required", missing);
		return -1;
	}
	if (cfg->jwks_file == NULL && cfg->jwks_uri == NULL)
	{
		snprintf(err, errlen, "one of jwks_file and jwks_uri is required");
		return -1;
	}
	if (strcmp(cfg->tls_min_version, "TLSv1.2") != 0 &&
		strcmp(cfg->tls_min_version, "TLSv1.3") != 0)
	{
		snprintf(err, errlen, "tls_min_version must be TLSv1.2 or TLSv1.3");
		return -1;
	}
	if (cfg->jwks_uri && strncmp(cfg->jwks_uri, "https://", 8) != 0)
	{
		snprintf(err, errlen, "jwks_uri must start with https://");
		return -1;
	}
	if (strlen(cfg->pgbouncer_socket_dir) > 80)
	{
		snprintf(err, errlen, "pgbouncer_socket_dir is too long for a unix socket path");
		return -1;
	}
	return 0;
}

ag_proxy_config *
ag_proxy_config_load(const char *path, char *err, size_t errlen)
{
	ag_proxy_config *cfg;
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
	ag_proxy_config_free(cfg);
	return NULL;
}

int
ag_proxy_config_listen_changed(const ag_proxy_config *a, const ag_proxy_config *b)
{
	return a->listen_port != b->listen_port ||
		strcmp(a->listen_addr, b->listen_addr) != 0;
}
