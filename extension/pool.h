/*-------------------------------------------------------------------------
 *
 * pool.h
 *	  The shared pool (pool.c): one login role, an agent identity per turn.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AG_POOL_H
#define AG_POOL_H

#include "nodes/nodes.h"

extern bool ag_pool_in_carrier;

extern void ag_pool_init(void);
extern bool ag_pool_session(void);
extern Oid	ag_pool_bound_role(void);
extern const char *ag_pool_stamp(void);
extern bool ag_pool_is_carrier(Node *parsetree);
extern void ag_pool_enter(Node *utility);
extern void ag_pool_utility(Node *parsetree);
extern void ag_pool_watch_client(void);
extern bool ag_pool_unserved(void);
extern void ag_pool_refuse(const char *what);
extern void ag_pool_planner_check(void);
extern void ag_pool_function_check(void);

#endif							/* AG_POOL_H */
