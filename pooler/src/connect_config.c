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
#include "ag_conffile.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(f, d)			AG_CONF_S(ag_connect_config, f, d)
#define I(f, d, lo, hi) AG_CONF_I(ag_connect_config, f, d, lo, hi)

static const ag_conf_key keys[] = {
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

void
ag_connect_config_free(ag_connect_config *cfg)
{
	if (cfg == NULL)
		return;
	ag_conf_free_strings(cfg, keys, NKEYS);
	free(cfg);
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

	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (ag_conf_load(cfg, keys, NKEYS, path, err, errlen) < 0 ||
		validate(cfg, err, errlen) < 0)
		goto fail;
	return cfg;

fail:
	ag_connect_config_free(cfg);
	return NULL;
}

