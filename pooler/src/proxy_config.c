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
#include "ag_conffile.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(f, d)			AG_CONF_S(ag_proxy_config, f, d)
#define I(f, d, lo, hi) AG_CONF_I(ag_proxy_config, f, d, lo, hi)
#define B(f, d)			AG_CONF_B(ag_proxy_config, f, d)

static const ag_conf_key keys[] = {
	S(listen_addr, "127.0.0.1"),
	I(listen_port, "6432", 1, 65535),
	S(tls_cert_file, NULL),
	S(tls_key_file, NULL),
	S(tls_min_version, "TLSv1.2"),
	I(tls_ticket_lifetime, "3600", 0, 86400),
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
	S(scope_claim, "scope"),
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
	I(login_cache_seconds, "10", 0, 60),
	I(login_cache_size, "1000", 1, 1000000),
	I(shutdown_timeout, "30", 0, 3600),
	B(shared_pool, "off"),
	S(pid_file, NULL),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void
ag_proxy_config_free(ag_proxy_config *cfg)
{
	if (cfg == NULL)
		return;
	ag_conf_free_strings(cfg, keys, NKEYS);
	free(cfg);
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
	ag_proxy_config_free(cfg);
	return NULL;
}

int
ag_proxy_config_listen_changed(const ag_proxy_config *a, const ag_proxy_config *b)
{
	return a->listen_port != b->listen_port ||
		strcmp(a->listen_addr, b->listen_addr) != 0;
}
