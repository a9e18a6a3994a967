-- One Zoom budget per account and rate-limit category, shared by every gateway on the database.
-- Times are microseconds on the database's own clock, so that the gateways' clocks never need to
-- agree: each reservation answers with a wait from now, not with a moment.
CREATE TABLE budget_slots (
    account          TEXT   NOT NULL,
    category         TEXT   NOT NULL,
    -- The earliest moment the next call of any gateway may be sent.
    next_send_us     BIGINT NOT NULL DEFAULT 0,
    -- Zoom answered 429: no call before then.
    paused_until_us  BIGINT NOT NULL DEFAULT 0,
    -- The pace Zoom's own X-RateLimit-Limit allows, when slower than the config's.
    zoom_interval_us BIGINT NOT NULL DEFAULT 0,
    -- Zoom's UTC day (days since the epoch) and the calls admitted on it, for daily caps.
    day              BIGINT NOT NULL DEFAULT 0,
    spent            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account, category)
);

-- The database's clock in microseconds: the one clock every gateway's places are set by.
CREATE FUNCTION budget_clock_us() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT
$$;

-- Reserves the next place of a budget for one call, or tells why there is none: 'reserved' with
-- the wait until the place, 'later' with the wait until the first free place when that is more
-- than p_within_us away (nothing is spent), or 'day_spent'. One row lock per call: the gateways
-- are served in the order they ask, and no two ever get places closer than the interval.
CREATE FUNCTION reserve_budget_slot(
    p_account TEXT,
    p_category TEXT,
    p_interval_us BIGINT,
    p_within_us BIGINT,
    p_daily_cap BIGINT,
    p_day BIGINT
) RETURNS TABLE (outcome TEXT, wait_us BIGINT, spent_today BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    now_us   BIGINT;
    slot     budget_slots%ROWTYPE;
    start_us BIGINT;
BEGIN
    SELECT * INTO slot FROM budget_slots
        WHERE account = p_account AND category = p_category FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO budget_slots (account, category) VALUES (p_account, p_category)
            ON CONFLICT DO NOTHING;
        SELECT * INTO slot FROM budget_slots
            WHERE account = p_account AND category = p_category FOR UPDATE;
    END IF;
    -- A gateway whose clock of Zoom's is behind never takes the day back.
    IF p_day > slot.day THEN
        slot.day := p_day;
        slot.spent := 0;
    END IF;
    IF p_daily_cap IS NOT NULL AND slot.spent >= p_daily_cap THEN
        RETURN QUERY SELECT 'day_spent'::TEXT, 0::BIGINT, slot.spent;
        RETURN;
    END IF;
    now_us := budget_clock_us();
    start_us := greatest(slot.next_send_us, slot.paused_until_us, now_us);
    IF start_us - now_us > p_within_us THEN
        RETURN QUERY SELECT 'later'::TEXT, start_us - now_us, slot.spent;
        RETURN;
    END IF;
    IF p_daily_cap IS NOT NULL THEN
        slot.spent := slot.spent + 1;
    END IF;
    UPDATE budget_slots
        SET next_send_us = start_us + greatest(p_interval_us, slot.zoom_interval_us),
            day = slot.day,
            spent = slot.spent
        WHERE account = p_account AND category = p_category;
    RETURN QUERY SELECT 'reserved'::TEXT, start_us - now_us, slot.spent;
END
$$;
