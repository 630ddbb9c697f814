/*-------------------------------------------------------------------------
 *
 * auth.c
 *	  Agent roles log in only through the pooler's private unix socket.
 *
 * An agent role has no password: PgBouncer reaches PostgreSQL as that role
 * over a unix socket in a directory only the pooler's OS user can enter,
 * and pg_hba.conf trusts that path.  pg_hba.conf cannot tell one socket
 * directory from another, nor check the peer's OS user against anything but
 * the role name, so this hook closes what it cannot express: after
 * authentication succeeds, a governed role (or PgBouncer's lookup role) is
 * refused unless the connection
 *
 *	 - is a unix-domain socket,
 *	 - was accepted on the socket in agentgate.pooler_socket_directory, and
 *	 - comes from the OS user agentgate.pooler_os_user (default: the OS user
 *	   the server runs as).
 *
 * Unset pooler_socket_directory means no agent can log in at all: fail
 * closed rather than trust every socket.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "agentgate.h"
#include "hooks.h"

static char *pooler_socket_directory = NULL;
static char *pooler_os_user = NULL;

/* Does the accepted unix socket live in the configured directory? */
static bool
socket_in_pooler_directory(Port *port)
{
	const struct sockaddr_un *sun;
	char		dir[MAXPGPATH];
	char		want[MAXPGPATH];
	char	   *slash;

	if (pooler_socket_directory == NULL || pooler_socket_directory[0] == '\0')
		return false;
	sun = (const struct sockaddr_un *) &port->laddr.addr;
	if (port->laddr.salen <= offsetof(struct sockaddr_un, sun_path))
		return false;
	strlcpy(dir, sun->sun_path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';

	strlcpy(want, pooler_socket_directory, sizeof(want));
	canonicalize_path(want);
	canonicalize_path(dir);
	return strcmp(dir, want) == 0;
}

/* Is the peer the OS user the pooler runs as? */
static bool
peer_is_pooler_user(Port *port, uid_t *peer_uid)
{
	uid_t		uid;
	gid_t		gid;
	uid_t		want;

	if (getpeereid(port->sock, &uid, &gid) != 0)
		return false;
	*peer_uid = uid;

	if (pooler_os_user == NULL || pooler_os_user[0] == '\0')
		want = geteuid();
	else
	{
		struct passwd *pw = getpwnam(pooler_os_user);

		if (pw == NULL)
			return false;
		want = pw->pw_uid;
	}
	return uid == want;
}

/* ClientAuthentication, called by hooks.c after the previous hook. */
void
ag_auth_client_authentication(Port *port, int status)
{
	Oid			roleid;
	bool		restricted;
	uid_t		peer_uid = (uid_t) -1;

	if (status != STATUS_OK)
		return;

	roleid = get_role_oid(port->user_name, true);
	if (!OidIsValid(roleid))
		return;
	restricted = ag_role_is_governed(roleid) ||
		strcmp(port->user_name, AG_PGBOUNCER_ROLE) == 0 ||
		strcmp(port->user_name, AG_POOL_ROLE) == 0;
	if (!restricted)
		return;

	if (port->raddr.addr.ss_family != AF_UNIX)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" may connect only through the agentgate pooler",
						port->user_name),
				 errdetail("Agent roles are refused on TCP connections."),
				 errhint("Connect to the agentgate proxy with an identity token as the password.")));

	if (!socket_in_pooler_directory(port))
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" may connect only through the agentgate pooler",
						port->user_name),
				 errdetail("The connection did not arrive on the socket in agentgate.pooler_socket_directory (\"%s\").",
						   pooler_socket_directory ? pooler_socket_directory : ""),
				 errhint("Connect to the agentgate proxy with an identity token as the password.")));

	if (!peer_is_pooler_user(port, &peer_uid))
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" may connect only through the agentgate pooler",
						port->user_name),
				 errdetail("The peer OS user (uid %d) is not agentgate.pooler_os_user.",
						   (int) peer_uid),
				 errhint("Connect to the agentgate proxy with an identity token as the password.")));
}

void
ag_auth_init(void)
{
	DefineCustomStringVariable("agentgate.pooler_socket_directory",
							   "Unix socket directory through which agent roles may log in.",
							   "It must be one of unix_socket_directories, mode 0700, used only by PgBouncer. "
							   "Empty refuses every agent login.",
							   &pooler_socket_directory,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("agentgate.pooler_os_user",
							   "OS user that PgBouncer runs as; agent logins from any other peer are refused.",
							   "Empty means the OS user the server runs as.",
							   &pooler_os_user,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}
