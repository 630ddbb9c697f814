-- Approvals: a statement an 'approve' rule matches runs only once a person
-- (a member of the rule's approver role, never an agent, never on their own
-- behalf) approved that exact statement (docs/approvals.md).
--
-- The queue lives in each database, beside the rules: the agent's backend
-- finds the approval of its retried statement in its own database (a
-- backend reads no other database), and approvers act where the agent did.

DO $$
BEGIN
    -- Members may approve or deny requests of rules that name no other role.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'agentgate_approver') THEN
        CREATE ROLE agentgate_approver NOLOGIN;
    END IF;
END
$$;

-- Rules: the action 'approve' and how its requests are made.
ALTER TABLE @extschema@.rules DROP CONSTRAINT rules_action_check;
ALTER TABLE @extschema@.rules ADD CONSTRAINT rules_action_check
    CHECK (action IN ('allow', 'block', 'log', 'approve'));
ALTER TABLE @extschema@.rules
    ADD COLUMN approval_mode    text,       -- retry (NULL) or wait
    ADD COLUMN approval_timeout interval,   -- NULL: 5 minutes
    ADD COLUMN approvers        regrole,    -- NULL: agentgate_approver
    ADD COLUMN min_approvals    integer;    -- NULL: 1

-- agentgate.require_approval(commands => '{DELETE}', relation => 'orders',
-- mode => 'wait', reason => '...'): block()'s arguments, then the approval's.
CREATE FUNCTION @extschema@.require_approval(
    commands      text[] DEFAULT NULL,
    relation      regclass DEFAULT NULL,
    columns       text[] DEFAULT NULL,
    condition     text DEFAULT NULL,
    max_rows      bigint DEFAULT NULL,
    fingerprint   text DEFAULT NULL,
    functions     regprocedure[] DEFAULT NULL,
    schema        regnamespace DEFAULT NULL,
    reason        text DEFAULT '',
    applies_to    regrole DEFAULT 'agentgate_agent'::text::regrole,
    priority      integer DEFAULT 100,
    mode          text DEFAULT NULL,
    timeout       interval DEFAULT '5 min',
    approvers     regrole DEFAULT 'agentgate_approver'::text::regrole,
    min_approvals integer DEFAULT 1)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $body$
    INSERT INTO @extschema@.rules (commands, relation, columns, condition, max_rows,
                                   fingerprint, functions, schema, reason, applies_to,
                                   priority, action, approval_mode, approval_timeout,
                                   approvers, min_approvals)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, ''), $10, $11, 'approve',
            coalesce($12, 'retry'), $13, $14, $15)
    RETURNING id
$body$;
REVOKE ALL ON FUNCTION @extschema@.require_approval(text[], regclass, text[], text, bigint, text, regprocedure[], regnamespace, text, regrole, integer, text, interval, regrole, integer) FROM PUBLIC;

-- The queue.  Rows are written by the approval worker (a request, its
-- use, its end) and by approve()/deny(); nobody else writes them.
CREATE TABLE @extschema@.approvals (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity      text NOT NULL,            -- agentgate.agents.identity, else the role
    role_name     name NOT NULL,            -- session_user of the statement
    session_id    text,                     -- verified session stamp
    database      name NOT NULL,
    statement     text NOT NULL,            -- the exact text
    parameters    text[],                   -- bound values (extended protocol)
    fingerprint   text NOT NULL,            -- text, parameters, role, database
    rule_id       bigint,
    mode          text NOT NULL CHECK (mode IN ('retry', 'wait')),
    approvers     regrole NOT NULL,
    min_approvals integer NOT NULL CHECK (min_approvals >= 1),
    chain         text[] NOT NULL,          -- identities the statement is made for
    requested_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'denied', 'expired',
                                    'cancelled', 'executed')),
    decided_by    name,
    decided_at    timestamptz,
    comment       text,
    executed_at   timestamptz
);
CREATE INDEX approvals_fingerprint ON @extschema@.approvals (fingerprint, id);
CREATE INDEX approvals_pending ON @extschema@.approvals (id) WHERE status = 'pending';
COMMENT ON TABLE @extschema@.approvals IS
    'agentgate: statements waiting for, or decided by, an approver';

CREATE TABLE @extschema@.approval_votes (
    request_id  bigint NOT NULL REFERENCES @extschema@.approvals ON DELETE CASCADE,
    approver    name NOT NULL,
    vote        text NOT NULL CHECK (vote IN ('approve', 'deny')),
    comment     text,
    voted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, approver)
);
COMMENT ON TABLE @extschema@.approval_votes IS
    'agentgate: one vote per approver and request (min_approvals distinct approvers)';

-- C helpers: who is asking, who is waiting, and what happens at commit.
CREATE FUNCTION @extschema@._approval_governed() RETURNS boolean
LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'agentgate_approval_governed';
CREATE FUNCTION @extschema@._approval_member(role oid, grp oid) RETURNS boolean
LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'agentgate_approval_member';
CREATE FUNCTION @extschema@._approval_waiting(id bigint) RETURNS boolean
LANGUAGE C VOLATILE STRICT AS 'MODULE_PATHNAME', 'agentgate_approval_waiting';
CREATE FUNCTION @extschema@._approval_decided(r @extschema@.approvals, status text, note text)
RETURNS void
LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'agentgate_approval_decided';
REVOKE ALL ON FUNCTION @extschema@._approval_governed() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._approval_member(oid, oid) FROM PUBLIC;
-- pending_approvals calls it with its reader's rights; it tells only
-- whether a statement waits for a request id.
GRANT EXECUTE ON FUNCTION @extschema@._approval_waiting(bigint) TO PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._approval_decided(@extschema@.approvals, text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@._approval_notify(r @extschema@.approvals) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_notify('agentgate_approvals',
                     json_build_object('id', r.id, 'identity', r.identity,
                                       'role', r.role_name, 'database', r.database,
                                       'statement', left(r.statement, 2000),
                                       'normalized', left(@extschema@.audit_statement_text(r.statement), 2000),
                                       'status', r.status,
                                       'mode', r.mode, 'rule_id', r.rule_id,
                                       'expires_at', r.expires_at,
                                       'decided_by', r.decided_by,
                                       'comment', r.comment)::text)
$$;
REVOKE ALL ON FUNCTION @extschema@._approval_notify(@extschema@.approvals) FROM PUBLIC;

-- The approval worker's one entry point (it runs as the bootstrap
-- superuser, in its own transaction, so what it writes commits whatever
-- becomes of the agent's transaction).
--   request: the approved request of this fingerprint is used (executed);
--            else the pending or denied one is reported; else a new one
--   cancel, expire: a pending request ends (cancel: also a waiting
--            statement's approval that it could not use)
CREATE FUNCTION @extschema@._approval_job(
    op text, req bigint, fp text, role oid, sid text, stmt text, params text[],
    rule bigint, rmode text, timeout_ms bigint, approvers oid, min_approvals integer,
    OUT id bigint, OUT status text, OUT note text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    r  @extschema@.approvals;
    rn name;
    ident text;
BEGIN
    IF op IN ('cancel', 'expire') THEN
        -- a waiting statement's approval it could not use: cancelled too
        UPDATE @extschema@.approvals a
           SET status = CASE op WHEN 'cancel' THEN 'cancelled' ELSE 'expired' END,
               executed_at = NULL
         WHERE a.id = req
           AND (a.status = 'pending' OR (op = 'cancel' AND a.status = 'executed' AND a.mode = 'wait'))
        RETURNING a.* INTO r;
        IF FOUND THEN
            PERFORM @extschema@._approval_notify(r);
        END IF;
        id := req;
        status := coalesce(r.status, 'unchanged');
        RETURN;
    END IF;
    IF op <> 'request' THEN
        RAISE EXCEPTION 'unknown approval job "%"', op;
    END IF;

    -- one request per statement at a time, whoever retries it
    PERFORM pg_advisory_xact_lock(hashtext('agentgate_approvals'), hashtext(fp));
    UPDATE @extschema@.approvals a SET status = 'expired'
     WHERE a.fingerprint = fp AND a.status = 'pending' AND a.expires_at <= now();
    SELECT a.* INTO r FROM @extschema@.approvals a
     WHERE a.fingerprint = fp AND a.status IN ('pending', 'approved', 'denied')
       AND a.expires_at > now()
     ORDER BY a.id DESC LIMIT 1
       FOR UPDATE;
    IF FOUND AND r.status = 'approved' THEN
        UPDATE @extschema@.approvals a SET status = 'executed', executed_at = now()
         WHERE a.id = r.id
        RETURNING a.* INTO r;
        PERFORM @extschema@._approval_notify(r);
        id := r.id; status := 'executed'; note := r.decided_by || coalesce(': ' || r.comment, '');
        RETURN;
    ELSIF FOUND THEN
        id := r.id; status := r.status; note := r.decided_by || coalesce(': ' || r.comment, '');
        RETURN;
    END IF;

    rn := (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = role);
    ident := coalesce((SELECT g.identity FROM @extschema@.agents g WHERE g.role_name = rn), rn);
    INSERT INTO @extschema@.approvals (identity, role_name, session_id, database, statement,
                                       parameters, fingerprint, rule_id, mode, approvers,
                                       min_approvals, chain, expires_at)
    VALUES (ident, rn, nullif(sid, ''), current_database(), stmt, params, fp, rule, rmode,
            approvers::regrole, min_approvals,
            -- a delegated session's whole chain: nobody in it may approve
            coalesce((SELECT d.chain FROM @extschema@.delegated_sessions() d
                       WHERE d.session_id = nullif(sid, '')), ARRAY[ident]),
            now() + timeout_ms * interval '1 millisecond')
    RETURNING * INTO r;
    PERFORM @extschema@._approval_notify(r);
    id := r.id; status := 'requested';
END
$$;
REVOKE ALL ON FUNCTION @extschema@._approval_job(text, bigint, text, oid, text, text, text[], bigint, text, bigint, oid, integer) FROM PUBLIC;

-- One vote by session_user; the decision once enough approvers agreed (or
-- one denied).  Refused: agents, non-members of the request's approver
-- role, anyone on whose behalf the statement was made, a second vote.
CREATE FUNCTION @extschema@._approval_vote(req bigint, v text, note text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       @extschema@.approvals;
    me      name := session_user;
    n       integer;
BEGIN
    IF @extschema@._approval_governed() THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'agentgate: agent roles may not approve or deny requests',
            HINT = 'A person who is a member of the rule''s approver role decides.';
    END IF;
    SELECT * INTO r FROM @extschema@.approvals a WHERE a.id = req FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('agentgate: approval request %s does not exist', req);
    END IF;
    IF NOT @extschema@._approval_member((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = me),
                                        r.approvers::oid) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('agentgate: %s may not decide approval request %s', me, req),
            DETAIL = format('Request %s is decided by members of %s.', req, r.approvers),
            HINT = format('Ask a database administrator to GRANT %s TO %I.', r.approvers, me);
    END IF;
    IF me = r.role_name OR me = ANY (r.chain) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('agentgate: %s may not decide approval request %s, made on their own behalf', me, req),
            HINT = 'Another approver must decide it.';
    END IF;
    IF r.status = 'pending' AND r.expires_at <= now() THEN
        UPDATE @extschema@.approvals a SET status = 'expired' WHERE a.id = req RETURNING a.* INTO r;
        PERFORM @extschema@._approval_notify(r);
    ELSIF r.status = 'pending' AND r.mode = 'wait' AND NOT @extschema@._approval_waiting(req) THEN
        -- its statement is no longer waiting (cancelled, disconnected, restart)
        UPDATE @extschema@.approvals a SET status = 'cancelled' WHERE a.id = req RETURNING a.* INTO r;
        PERFORM @extschema@._approval_notify(r);
    END IF;
    IF r.status <> 'pending' THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('agentgate: approval request %s is %s', req, r.status),
            DETAIL = 'Only a pending request can be approved or denied.';
    END IF;
    BEGIN
        INSERT INTO @extschema@.approval_votes (request_id, approver, vote, comment)
        VALUES (req, me, v, note);
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('agentgate: %s has already voted on approval request %s', me, req),
            HINT = 'min_approvals counts distinct approvers.';
    END;
    IF v = 'approve' THEN
        SELECT count(*) INTO n FROM @extschema@.approval_votes
         WHERE request_id = req AND vote = 'approve';
        IF n < r.min_approvals THEN
            PERFORM @extschema@._approval_decided(r, 'voted',
                format('approved by %s (%s of %s)%s', me, n, r.min_approvals, coalesce(': ' || note, '')));
            RETURN format('pending (%s of %s approvals)', n, r.min_approvals);
        END IF;
    END IF;
    -- A waiting statement's approval is used by that statement, which
    -- this commit wakes: it is executed from now on, so that no other
    -- session's identical statement can use it too (if the statement is
    -- gone by then, the commit marks the request cancelled instead).
    UPDATE @extschema@.approvals a
       SET status = CASE WHEN v = 'deny' THEN 'denied'
                         WHEN a.mode = 'wait' THEN 'executed' ELSE 'approved' END,
           executed_at = CASE WHEN v = 'approve' AND a.mode = 'wait' THEN now() END,
           decided_by = me, decided_at = now(), comment = note
     WHERE a.id = req
    RETURNING a.* INTO r;
    PERFORM @extschema@._approval_notify(r);
    -- audit row, and the waiting statement woken, when this commits
    PERFORM @extschema@._approval_decided(r, CASE v WHEN 'approve' THEN 'approved' ELSE 'denied' END,
        format('%s by %s%s', CASE v WHEN 'approve' THEN 'approved' ELSE 'denied' END, me,
               coalesce(': ' || note, '')));
    RETURN CASE v WHEN 'approve' THEN 'approved' ELSE 'denied' END;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._approval_vote(bigint, text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@.approve(id bigint, comment text DEFAULT NULL) RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._approval_vote($1, 'approve', $2) $$;
CREATE FUNCTION @extschema@.deny(id bigint, reason text) RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._approval_vote($1, 'deny', $2) $$;
COMMENT ON FUNCTION @extschema@.approve(bigint, text) IS
    'agentgate: approve a pending request (members of its approver role; not on your own behalf)';
COMMENT ON FUNCTION @extschema@.deny(bigint, text) IS
    'agentgate: deny a pending request (members of its approver role; not on your own behalf)';
-- Everyone may call them; _approval_vote decides who may decide what.
GRANT EXECUTE ON FUNCTION @extschema@._approval_vote(bigint, text, text) TO PUBLIC;

-- What approvers look at: pending requests whose statement can still run.
CREATE VIEW @extschema@.pending_approvals AS
SELECT a.id, a.identity, a.role_name, a.session_id, a.database, a.statement,
       a.parameters, a.rule_id, a.mode, a.approvers, a.min_approvals,
       (SELECT count(*) FROM @extschema@.approval_votes v
         WHERE v.request_id = a.id AND v.vote = 'approve') AS approvals,
       a.requested_at, a.expires_at
  FROM @extschema@.approvals a
 WHERE a.status = 'pending' AND a.expires_at > now()
   AND (a.mode = 'retry' OR @extschema@._approval_waiting(a.id));

-- An agent's own requests (by its session user), and nothing else.
CREATE FUNCTION @extschema@.my_approvals(
    OUT id bigint, OUT statement text, OUT status text, OUT requested_at timestamptz,
    OUT expires_at timestamptz, OUT decided_at timestamptz, OUT comment text)
RETURNS SETOF record
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.id, a.statement,
           CASE WHEN a.status = 'pending' AND a.expires_at <= now() THEN 'expired'
                ELSE a.status END,
           a.requested_at, a.expires_at, a.decided_at, a.comment
      FROM @extschema@.approvals a
     WHERE a.role_name = @extschema@.session_role()
     ORDER BY a.id DESC
$$;
COMMENT ON FUNCTION @extschema@.my_approvals() IS
    'agentgate: the approval requests of the calling role (agents check their status here)';

REVOKE ALL ON TABLE @extschema@.approvals, @extschema@.approval_votes,
    @extschema@.pending_approvals FROM PUBLIC;
GRANT SELECT ON @extschema@.pending_approvals TO agentgate_approver;
GRANT SELECT ON @extschema@.approvals, @extschema@.approval_votes TO agentgate_auditor;
GRANT EXECUTE ON FUNCTION @extschema@.my_approvals() TO PUBLIC;
