"""PostgreSQL's settle in one round trip: the PL/pgSQL function migration 14 creates.

It books the usual settle whole (the cap does not bind, so `wattfare.metering.charge_for` is the cost at most the
hold; no alert threshold is crossed; no grant) and refuses anything else with WF001, which undoes the call and
sends the settle down the statement-per-step path (`postgres.store.PostgresStore.settle`). Kept apart from the
list of migrations because it is a program, not a schema change; a change to it is a new migration.
"""

from __future__ import annotations

from typing import Final

SETTLE_USUAL_FUNCTION: Final = """CREATE OR REPLACE FUNCTION wattfare_settle_usual(
                p_hold_id TEXT, p_cost BIGINT, p_absorbed BIGINT, p_kind TEXT, p_prompt_tokens BIGINT,
                p_completion_tokens BIGINT, p_now TEXT, p_thresholds INTEGER[]
            ) RETURNS TABLE (o_connection_id TEXT, o_window_key TEXT, o_spent BIGINT, o_reserved BIGINT,
                             o_cap BIGINT, o_charged BIGINT, o_mode TEXT, o_absorbed BIGINT)
            LANGUAGE plpgsql AS $$
            DECLARE
                h RECORD;
                k RECORD;
                v_cost BIGINT := GREATEST(p_cost, 0);
                v_charged BIGINT;
            BEGIN
                DELETE FROM holds WHERE id = p_hold_id
                    RETURNING connection_id, window_key, amount, model, endpoint, grant_id INTO h;
                IF NOT FOUND THEN
                    RETURN;  -- settled already: no row, as a settle of a hold that is gone answers
                END IF;
                SELECT c.app_id, c.mode, c.app_user_id, c.cap, n.spent, n.alerted INTO STRICT k
                    FROM connections c JOIN counters n ON n.connection_id = c.id AND n.window_key = h.window_key
                    WHERE c.id = h.connection_id FOR UPDATE OF n;
                -- metering.charge_for with the cap not binding: the cost, never more than was held.
                v_charged := LEAST(v_cost, h.amount);
                IF h.grant_id IS NOT NULL OR k.spent + v_charged > k.cap
                   OR (k.cap > 0 AND EXISTS (
                       SELECT 1 FROM unnest(p_thresholds) t
                       WHERE t > k.alerted AND (k.spent + v_charged)::NUMERIC * 100 >= t::NUMERIC * k.cap)) THEN
                    RAISE EXCEPTION 'this settle takes the statement-per-step path' USING ERRCODE = 'WF001';
                END IF;
                UPDATE counters SET reserved = reserved - h.amount, spent = spent + v_charged
                    WHERE connection_id = h.connection_id AND window_key = h.window_key
                    RETURNING spent, reserved INTO o_spent, o_reserved;
                INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model,
                                    amount, absorbed, prompt_tokens, completion_tokens, created_at, endpoint)
                    VALUES (p_hold_id, h.connection_id, k.app_id, k.mode, k.app_user_id, h.window_key, p_kind,
                            h.model, v_charged, p_absorbed + v_cost - v_charged, p_prompt_tokens,
                            p_completion_tokens, p_now, h.endpoint);
                o_connection_id := h.connection_id;
                o_window_key := h.window_key;
                o_cap := k.cap;
                o_charged := v_charged;
                o_mode := k.mode;
                o_absorbed := p_absorbed + v_cost - v_charged;
                RETURN NEXT;
            END
            $$"""
