//! One account's budget in one rate-limit category.
//!
//! Calls are spaced evenly, never in bursts, so that no second of Zoom's carries more than the
//! limit even when a call is a little late on the wire. Calls that must wait are served in
//! start-time fair queueing order between callers, by weight: a caller's unused share goes to
//! whoever waits, and a caller that floods only lengthens its own queue. A call is refused as
//! soon as it is clear it could not start before its latest start, and a refused call spends
//! nothing.
//!
//! On a shared store the pace itself is the database's ([`SharedBudget`]): the fair queue still
//! orders this gateway's calls, and one place at a time is reserved for whichever call is first
//! in it when the place comes.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::accounts::AccountName;
use crate::store::{SharedBudget, Slot, SlotAsk, StoreError};
use crate::zoom::RateCategory;

/// Fixed-point unit of virtual time: a call of a caller of weight `w` costs `SCALE / w`.
const SCALE: u64 = 1_000_000;
/// tokio's timers fire in whole milliseconds.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);
/// How long a shared budget's store may take to hand out a place (it takes well under a
/// millisecond when healthy) before the calls waiting for it are refused as unavailable.
const RESERVE_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest gap between two of a gateway's shared places that counts as pace: the others
/// taking the places between, not a pause.
const MAX_GAP_IN_INTERVALS: u32 = 32;
/// Past callers remembered before the idle ones are forgotten.
const MAX_REMEMBERED_CALLERS: usize = 1024;

/// Why a call was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It could not start before its latest start; a call asking again after `retry_after`
    /// would find room. `daily` when the day's cap, not the per-second pace, is spent.
    Exhausted { retry_after: Duration, daily: bool },
    /// The gateway is shutting down and the call could not start within the grace period.
    Draining,
    /// The shared budget's store does not answer: no call may go without its place.
    Unavailable,
}

impl Refusal {
    /// The refusal of a call that cannot start before its latest start: `Draining` when the
    /// drain's end, not the call's own, was the bound.
    fn late(draining: bool, retry_after: Duration) -> Refusal {
        if draining {
            Refusal::Draining
        } else {
            Refusal::Exhausted {
                retry_after,
                daily: false,
            }
        }
    }

    /// A metric label: `per_second`, `daily`, `draining` or `unavailable`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Exhausted { daily: false, .. } => "per_second",
            Refusal::Exhausted { daily: true, .. } => "daily",
            Refusal::Draining => "draining",
            Refusal::Unavailable => "unavailable",
        }
    }
}

/// One call asking for a place.
pub(super) struct Ask<'a> {
    pub caller: &'a str,
    pub weight: u32,
    /// The call must be sent by then, or not at all.
    pub latest_start: Instant,
    /// Time between two calls: one over the admitted rate.
    pub interval: Duration,
    /// Calls allowed per day of Zoom's, if the category has a daily cap.
    pub daily_cap: Option<u64>,
    pub today: ZoomDay,
}

/// The current day of Zoom's clock (UTC), and how long it has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoomDay {
    pub number: i64,
    pub left: Duration,
}

pub(super) struct Budget {
    state: Mutex<State>,
    /// Where the pace is kept when every gateway on the store spends this budget together.
    shared: Option<Shared>,
}

/// A budget's place in the store's shared budgets.
pub(super) struct Shared {
    pub engine: Arc<dyn SharedBudget>,
    pub account: AccountName,
    pub category: RateCategory,
}

struct State {
    interval: Duration,
    /// The pace Zoom's own `X-RateLimit-Limit` allows, when slower than the config's.
    zoom_interval: Duration,
    /// The earliest moment the next call may be sent.
    next_send: Instant,
    /// Zoom asked for no calls before then (a 429).
    paused_until: Instant,
    /// (day, calls admitted that day).
    daily: (i64, u64),
    /// Shutting down: calls that could not start by then are refused.
    drain_by: Option<Instant>,
    /// The daily cap and day of the latest ask, for the places reserved in the shared budget.
    daily_cap: Option<u64>,
    today: ZoomDay,
    /// Shared: how far apart this gateway's places came lately while calls waited (the other
    /// gateways take the places between), to tell a call at once when it cannot go in time.
    place_gap: Duration,
    /// Shared: when this gateway's latest place came, if calls have waited since.
    last_place: Option<Instant>,
    queue: FairQueue,
    /// A task is granting places to the queue.
    dispatching: bool,
}

type Grant = Result<(), Refusal>;

struct Waiter {
    reply: oneshot::Sender<Grant>,
    /// Whether it counted against the daily cap, to give back if it never goes.
    counted_daily: bool,
    /// The call must be sent by then, or not at all.
    latest_start: Instant,
}

impl Shared {
    /// Runs `call` with the store's budget, this budget's account and category, in a task of
    /// its own: nothing waits for it, and a failure is only logged, as `failing`.
    fn in_background<F, Fut>(&self, failing: &'static str, call: F)
    where
        F: FnOnce(Arc<dyn SharedBudget>, AccountName, &'static str) -> Fut,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let done = call(
            Arc::clone(&self.engine),
            self.account.clone(),
            self.category.as_str(),
        );
        tokio::spawn(async move {
            if let Err(error) = done.await {
                tracing::warn!(%error, "{failing}");
            }
        });
    }

    /// A place reserved for `ask` went unused: on a capped day it counts no more.
    fn give_back(&self, ask: &SlotAsk) {
        if ask.daily_cap.is_some() {
            let day = ask.day;
            self.in_background(
                "could not give back an unused place of the day",
                move |engine, account, category| async move {
                    engine.give_back(&account, category, day).await
                },
            );
        }
    }

    /// A reservation nobody waits for any more: a place it takes after all is given back.
    fn give_back_if_reserved(&self, reservation: Reservation, ask: &SlotAsk) {
        if ask.daily_cap.is_some() {
            let day = ask.day;
            self.in_background(
                "could not give back an abandoned place of the day",
                move |engine, account, category| async move {
                    match reservation.await {
                        Ok(Slot::Reserved { .. }) => {
                            engine.give_back(&account, category, day).await
                        }
                        _ => Ok(()),
                    }
                },
            );
        }
    }
}

/// A reservation in the shared budget, on its way.
type Reservation = Pin<Box<dyn Future<Output = Result<Slot, StoreError>> + Send>>;

impl Budget {
    pub(super) fn new(interval: Duration, shared: Option<Shared>) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                interval,
                zoom_interval: Duration::ZERO,
                next_send: now,
                paused_until: now,
                daily: (0, 0),
                drain_by: None,
                daily_cap: None,
                today: ZoomDay {
                    number: 0,
                    left: Duration::ZERO,
                },
                place_gap: Duration::ZERO,
                last_place: None,
                queue: FairQueue::default(),
                dispatching: false,
            }),
            shared,
        })
    }

    /// Waits for this call's place, or refuses it at once when it could not start in time.
    pub(super) async fn admit(self: &Arc<Self>, ask: Ask<'_>) -> Result<(), Refusal> {
        let (key, reply) = {
            let mut state = self.lock();
            let now = Instant::now();
            state.interval = ask.interval.max(state.zoom_interval);
            state.daily_cap = ask.daily_cap;
            state.today = ask.today;
            // A shared budget counts the day in the store, as it reserves the call's place.
            let counted_daily = if self.shared.is_some() {
                state.check_daily(&ask)?;
                false
            } else {
                state.count_daily(&ask)?
            };
            let start_tag = state.queue.start_tag(ask.caller);
            let ahead = state.queue.ahead_of(start_tag);
            let start = state.next_start(now) + state.spacing() * ahead as u32;
            let latest = state
                .drain_by
                .map_or(ask.latest_start, |by| by.min(ask.latest_start));
            if start > latest {
                if counted_daily {
                    state.give_back_daily(ask.today.number);
                }
                return Err(if start <= ask.latest_start {
                    Refusal::Draining
                } else {
                    Refusal::Exhausted {
                        retry_after: start - now,
                        daily: false,
                    }
                });
            }
            state.queue.charge(ask.caller, ask.weight, start_tag);
            if self.shared.is_none() && ahead == 0 && start <= now {
                state.queue.virtual_time = start_tag;
                state.next_send = now + state.interval;
                return Ok(());
            }
            let (reply, receive) = oneshot::channel();
            let key = state.queue.push(
                start_tag,
                Waiter {
                    reply,
                    counted_daily,
                    latest_start: ask.latest_start,
                },
            );
            if !state.dispatching {
                state.dispatching = true;
                if self.shared.is_some() {
                    tokio::spawn(Arc::clone(self).dispatch_shared());
                } else {
                    tokio::spawn(Arc::clone(self).dispatch());
                }
            }
            (key, receive)
        };
        let latest_start = ask.latest_start;
        let mut reply = reply;
        match tokio::time::timeout_at(latest_start, &mut reply).await {
            Ok(Ok(grant)) => grant,
            Ok(Err(_)) => Err(Refusal::Draining),
            Err(_) => {
                // Newer calls of lighter callers went first; this one leaves the queue unspent,
                // unless its place came in the same instant.
                let left = self.withdraw(key, ask.today.number);
                match reply.try_recv() {
                    Ok(grant) if !left => grant,
                    _ => Err(Refusal::Exhausted {
                        retry_after: self.lock().spacing(),
                        daily: false,
                    }),
                }
            }
        }
    }

    /// Zoom said 429: no call goes before `until`, from any gateway sharing the budget.
    pub(super) fn pause(&self, until: Instant) {
        let mut state = self.lock();
        state.paused_until = state.paused_until.max(until);
        if let Some(shared) = &self.shared {
            let wait = until.saturating_duration_since(Instant::now());
            shared.in_background(
                "could not share zoom's pause with the other gateways",
                move |engine, account, category| async move {
                    engine.pause(&account, category, wait).await
                },
            );
        }
    }

    /// Paces calls no faster than one per `interval` from now on, whatever the config says.
    pub(super) fn slow_to(&self, interval: Duration) {
        let mut state = self.lock();
        state.zoom_interval = state.zoom_interval.max(interval);
        state.interval = state.interval.max(interval);
        if let Some(shared) = &self.shared {
            shared.in_background(
                "could not share zoom's lower limit with the other gateways",
                move |engine, account, category| async move {
                    engine.slow_to(&account, category, interval).await
                },
            );
        }
    }

    /// How long Zoom's last 429 still holds calls back.
    pub(super) fn paused_for(&self) -> Option<Duration> {
        let left = self
            .lock()
            .paused_until
            .saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Calls counted against the daily cap on `day`.
    pub(super) fn spent_on(&self, day: i64) -> u64 {
        match self.lock().daily {
            (counted, spent) if counted == day => spent,
            _ => 0,
        }
    }

    /// How many calls wait now.
    pub(super) fn waiting(&self) -> usize {
        self.lock().queue.waiting.len()
    }

    /// From now on, calls that could not start by `by` are refused, and the waiting ones that
    /// cannot are told so at once.
    pub(super) fn drain(&self, by: Instant) {
        let mut state = self.lock();
        state.drain_by = Some(by);
        let first = state.next_start(Instant::now());
        let interval = state.spacing();
        let late: Vec<_> = state
            .queue
            .waiting
            .keys()
            .enumerate()
            .filter(|(ahead, _)| first + interval * *ahead as u32 > by)
            .map(|(_, key)| *key)
            .collect();
        for key in late {
            state.refuse(key, Refusal::Draining);
        }
    }

    /// Grants places to the queue, one per interval, lowest start tag first; ends when the
    /// queue is empty.
    async fn dispatch(self: Arc<Self>) {
        loop {
            let sleep_until = {
                let mut state = self.lock();
                let now = Instant::now();
                let at = state.next_send.max(state.paused_until);
                if at > now {
                    at
                } else {
                    let Some(((tag, _), waiter)) = state.queue.waiting.pop_first() else {
                        state.dispatching = false;
                        return;
                    };
                    if waiter.reply.send(Ok(())).is_ok() {
                        state.queue.virtual_time = tag;
                        // On schedule when this task woke a little late (timers tick in whole
                        // milliseconds), but what a longer delay missed is not caught up.
                        let slack = state.interval.max(TIMER_RESOLUTION);
                        let floor = now.checked_sub(slack).unwrap_or(now);
                        state.next_send = at.max(floor) + state.interval;
                    } else if waiter.counted_daily {
                        let day = state.daily.0;
                        state.give_back_daily(day);
                    }
                    continue;
                }
            };
            tokio::time::sleep_until(sleep_until).await;
        }
    }

    /// Reserves places in the shared budget one at a time and grants each to the call first in
    /// the queue when it comes; ends when the queue is empty.
    async fn dispatch_shared(self: Arc<Self>) {
        let Some(shared) = &self.shared else {
            return;
        };
        loop {
            let next = {
                let mut state = self.lock();
                let Some((&head, waiter)) = state.queue.waiting.first_key_value() else {
                    state.dispatching = false;
                    state.forget_pace_if_idle();
                    return;
                };
                let now = Instant::now();
                let draining = state.drain_by.is_some_and(|by| by < waiter.latest_start);
                let latest = state
                    .drain_by
                    .map_or(waiter.latest_start, |by| by.min(waiter.latest_start));
                // Zoom's pause as this gateway heard it holds before the store has it too.
                let start = state.paused_until.max(now);
                if start >= latest {
                    let refusal = Refusal::late(draining, start - now);
                    state.refuse(head, refusal);
                    continue;
                }
                if start > now {
                    Err(start)
                } else {
                    Ok((
                        SlotAsk {
                            account: shared.account.clone(),
                            category: shared.category.as_str(),
                            interval: state.interval,
                            within: latest - now,
                            daily_cap: state.daily_cap,
                            day: state.today.number,
                        },
                        head,
                        draining,
                    ))
                }
            };
            let (ask, head, draining) = match next {
                Ok(next) => next,
                Err(pause_ends) => {
                    tokio::time::sleep_until(pause_ends).await;
                    continue;
                }
            };
            // A store that is slow keeps nobody past their start, nor long at all. A reservation
            // given up on runs on, so that a place it takes after all is given back.
            let bound = ask.within.min(RESERVE_TIMEOUT);
            let mut reservation: Reservation = Box::pin({
                let (engine, ask) = (Arc::clone(&shared.engine), ask.clone());
                async move { engine.reserve(&ask).await }
            });
            let answer = tokio::time::timeout(bound, &mut reservation).await;
            let answered = Instant::now();
            match answer {
                Ok(Ok(Slot::Reserved { wait, spent_today })) => {
                    let at = answered + wait;
                    // tokio's timers round up to the next millisecond: a place due sooner is
                    // taken now, and the database's schedule, not this send, sets the next one.
                    if wait >= TIMER_RESOLUTION {
                        tokio::time::sleep_until(at).await;
                    }
                    let used = self.lock().take_place(at, ask.day, spent_today);
                    if !used {
                        shared.give_back(&ask);
                    }
                }
                Ok(Ok(Slot::Later { wait })) => {
                    let mut state = self.lock();
                    let refusal = Refusal::late(draining, wait);
                    state.refuse(head, refusal);
                }
                Ok(Ok(Slot::DaySpent)) => {
                    let mut state = self.lock();
                    let refusal = Refusal::Exhausted {
                        retry_after: state.today.left,
                        daily: true,
                    };
                    state.daily = (ask.day, ask.daily_cap.unwrap_or_default());
                    state.refuse_all(refusal);
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the shared zoom budget does not answer");
                    self.lock().refuse_all(Refusal::Unavailable);
                }
                Err(_) => {
                    shared.give_back_if_reserved(reservation, &ask);
                    let mut state = self.lock();
                    if bound < RESERVE_TIMEOUT {
                        // Only the head's own bound passed: the others may still wait.
                        let refusal = Refusal::late(draining, state.spacing());
                        state.refuse(head, refusal);
                    } else {
                        tracing::warn!(
                            timeout = ?RESERVE_TIMEOUT,
                            "the shared zoom budget does not answer in time"
                        );
                        state.refuse_all(Refusal::Unavailable);
                    }
                }
            }
        }
    }

    /// Takes `key` out of the queue; tells whether it was still there.
    fn withdraw(&self, key: (u64, u64), day: i64) -> bool {
        let mut state = self.lock();
        let removed = state.queue.waiting.remove(&key);
        state.forget_pace_if_idle();
        match removed {
            Some(waiter) => {
                if waiter.counted_daily {
                    state.give_back_daily(day);
                }
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn next_start(&self, now: Instant) -> Instant {
        self.next_send.max(self.paused_until).max(now)
    }

    /// The time between this gateway's calls while they wait: the interval, or on a shared
    /// budget the gap between its places lately.
    fn spacing(&self) -> Duration {
        self.interval.max(self.place_gap)
    }

    /// A shared place came at `at`: the first call in the queue takes it (the next if that one
    /// left), unless Zoom paused the budget or the drain's end passed meanwhile. Tells whether
    /// a call took it.
    fn take_place(&mut self, at: Instant, day: i64, spent_today: u64) -> bool {
        self.daily = (day, spent_today);
        if self.paused_until > Instant::now() {
            return false;
        }
        if self.drain_by.is_some_and(|by| at > by) {
            self.refuse_all(Refusal::Draining);
            return false;
        }
        let mut used = false;
        while let Some(((tag, _), waiter)) = self.queue.waiting.pop_first() {
            if waiter.reply.send(Ok(())).is_ok() {
                self.queue.virtual_time = tag;
                used = true;
                break;
            }
        }
        // The gap between places counts only while calls waited for them all along; idle time
        // (or an outage, whose waiters were all refused) is not pace.
        if let Some(last) = self.last_place {
            let gap = at
                .saturating_duration_since(last)
                .min(self.interval * MAX_GAP_IN_INTERVALS);
            self.place_gap = self.place_gap.mul_f64(0.7) + gap.mul_f64(0.3);
        }
        self.last_place = (!self.queue.waiting.is_empty()).then_some(at);
        self.next_send = at + self.interval;
        used
    }

    fn refuse(&mut self, key: (u64, u64), refusal: Refusal) {
        if let Some(waiter) = self.queue.waiting.remove(&key) {
            let _ = waiter.reply.send(Err(refusal));
        }
        self.forget_pace_if_idle();
    }

    /// With nobody waiting, the next place's gap to the last one would measure idle time.
    fn forget_pace_if_idle(&mut self) {
        if self.queue.waiting.is_empty() {
            self.last_place = None;
        }
    }

    fn refuse_all(&mut self, refusal: Refusal) {
        for (_, waiter) in std::mem::take(&mut self.queue.waiting) {
            let _ = waiter.reply.send(Err(refusal));
        }
        self.forget_pace_if_idle();
    }

    /// Refuses the call at once when the store last said the day's calls are spent.
    fn check_daily(&self, ask: &Ask<'_>) -> Result<(), Refusal> {
        match (ask.daily_cap, self.daily) {
            (Some(cap), (day, spent)) if day == ask.today.number && spent >= cap => {
                Err(Refusal::Exhausted {
                    retry_after: ask.today.left,
                    daily: true,
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts the call against the day's cap, or refuses it when the day's calls are spent.
    fn count_daily(&mut self, ask: &Ask<'_>) -> Result<bool, Refusal> {
        let Some(cap) = ask.daily_cap else {
            return Ok(false);
        };
        if self.daily.0 != ask.today.number {
            self.daily = (ask.today.number, 0);
        }
        if self.daily.1 >= cap {
            return Err(Refusal::Exhausted {
                retry_after: ask.today.left,
                daily: true,
            });
        }
        self.daily.1 += 1;
        Ok(true)
    }

    fn give_back_daily(&mut self, day: i64) {
        if self.daily.0 == day {
            self.daily.1 = self.daily.1.saturating_sub(1);
        }
    }
}

/// Start-time fair queueing: each call gets a start tag, the later of the virtual time and
/// its caller's last finish tag; calls are served in start tag order, and serving one moves
/// the virtual time to its tag.
#[derive(Default)]
struct FairQueue {
    virtual_time: u64,
    /// Each caller's last finish tag.
    finish: HashMap<String, u64>,
    /// (start tag, arrival number) -> the waiting call.
    waiting: BTreeMap<(u64, u64), Waiter>,
    arrivals: u64,
}

impl FairQueue {
    fn start_tag(&self, caller: &str) -> u64 {
        self.finish
            .get(caller)
            .map_or(self.virtual_time, |&finish| finish.max(self.virtual_time))
    }

    /// How many waiting calls go before one with `tag`.
    fn ahead_of(&self, tag: u64) -> usize {
        self.waiting.range(..(tag, u64::MAX)).count()
    }

    /// Moves the caller's finish tag past a call that starts at `tag`.
    fn charge(&mut self, caller: &str, weight: u32, tag: u64) {
        if self.finish.len() >= MAX_REMEMBERED_CALLERS {
            let now = self.virtual_time;
            self.finish.retain(|_, finish| *finish > now);
        }
        let finish = tag + SCALE / u64::from(weight.max(1));
        match self.finish.get_mut(caller) {
            Some(last) => *last = finish,
            None => {
                self.finish.insert(caller.to_owned(), finish);
            }
        }
    }

    fn push(&mut self, tag: u64, waiter: Waiter) -> (u64, u64) {
        self.arrivals += 1;
        let key = (tag, self.arrivals);
        self.waiting.insert(key, waiter);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: ZoomDay = ZoomDay {
        number: 1,
        left: Duration::from_secs(3600),
    };

    fn ask(caller: &str, weight: u32, within: Duration) -> Ask<'_> {
        Ask {
            caller,
            weight,
            latest_start: Instant::now() + within,
            interval: Duration::from_millis(100),
            daily_cap: None,
            today: DAY,
        }
    }

    /// Sends `count` calls of `caller` at once; returns when each was admitted, from now.
    fn flood(
        budget: &Arc<Budget>,
        caller: &'static str,
        weight: u32,
        count: usize,
        within: Duration,
    ) -> Vec<tokio::task::JoinHandle<Result<Duration, Refusal>>> {
        (0..count)
            .map(|_| {
                let budget = Arc::clone(budget);
                let started = Instant::now();
                tokio::spawn(async move {
                    budget.admit(ask(caller, weight, within)).await?;
                    Ok(started.elapsed())
                })
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_by_the_interval_never_in_a_burst() {
        let budget = Budget::new(Duration::from_millis(100), None);
        let calls = flood(&budget, "a", 1, 5, Duration::from_secs(10));
        let mut took = Vec::new();
        for call in calls {
            took.push(call.await.unwrap().unwrap().as_millis());
        }
        took.sort();
        assert_eq!(took, [0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pace_finer_than_the_timers_still_holds_on_average() {
        let budget = Budget::new(Duration::from_micros(200), None);
        let calls: Vec<_> = (0..1000)
            .map(|_| {
                let budget = Arc::clone(&budget);
                let started = Instant::now();
                tokio::spawn(async move {
                    let mut ask = ask("a", 1, Duration::from_secs(10));
                    ask.interval = Duration::from_micros(200);
                    budget.admit(ask).await.unwrap();
                    started.elapsed()
                })
            })
            .collect();
        let mut last = Duration::ZERO;
        for call in calls {
            last = last.max(call.await.unwrap());
        }
        // 1000 calls at one per 200 µs take 200 ms, give or take a timer tick.
        assert!(last >= Duration::from_millis(198), "{last:?}");
        assert!(last <= Duration::from_millis(202), "{last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_could_not_start_in_time_is_refused_at_once_and_spends_nothing() {
        let budget = Budget::new(Duration::from_millis(100), None);
        let queued = flood(&budget, "a", 1, 10, Duration::from_secs(10));
        tokio::task::yield_now().await;

        let started = Instant::now();
        let refused = budget.admit(ask("b", 1, Duration::from_millis(50))).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
        let Err(Refusal::Exhausted { retry_after, .. }) = refused else {
            panic!("{refused:?}");
        };
        assert!(retry_after <= Duration::from_millis(200), "{retry_after:?}");
        // b's share is still whole: its next call goes right after the one being served.
        let next = budget.admit(ask("b", 1, Duration::from_secs(1))).await;
        assert!(next.is_ok());
        assert!(started.elapsed() <= Duration::from_millis(200));
        for call in queued {
            call.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flooding_caller_cannot_starve_another_and_weights_set_the_shares() {
        let budget = Budget::new(Duration::from_millis(100), None);
        let flooder = flood(&budget, "flood", 1, 300, Duration::from_secs(60));
        tokio::task::yield_now().await;
        // While the flood waits, a weight-2 caller and a weight-1 caller each queue 20 calls.
        let heavy = flood(&budget, "heavy", 2, 20, Duration::from_secs(60));
        let light = flood(&budget, "light", 1, 20, Duration::from_secs(60));

        let last = |calls: Vec<tokio::task::JoinHandle<Result<Duration, Refusal>>>| async {
            let mut latest = Duration::ZERO;
            for call in calls {
                latest = latest.max(call.await.unwrap().unwrap());
            }
            latest
        };
        let (heavy, light) = (last(heavy).await, last(light).await);
        // With three waiting callers of weights 1, 2, 1, the heavy one gets half the slots:
        // its 20 calls are done after about 40 slots, the light one's after about 60 (once the
        // heavy one is done, it shares with the flood alone); the flood's 300 wait behind.
        assert!(heavy <= Duration::from_millis(4_100), "{heavy:?}");
        assert!(light <= Duration::from_millis(6_100), "{light:?}");
        assert!(heavy < light);
        last(flooder).await;
    }

    #[tokio::test(start_paused = true)]
    async fn zoom_s_pause_holds_every_call_back() {
        let budget = Budget::new(Duration::from_millis(100), None);
        budget.pause(Instant::now() + Duration::from_secs(1));
        assert!(budget.paused_for().is_some());
        let refused = budget.admit(ask("a", 1, Duration::from_millis(500))).await;
        assert!(matches!(refused, Err(Refusal::Exhausted { .. })));
        let started = Instant::now();
        budget
            .admit(ask("a", 1, Duration::from_secs(2)))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_limit_zoom_names_slows_the_pace_for_good() {
        let budget = Budget::new(Duration::from_millis(100), None);
        budget.slow_to(Duration::from_millis(300));
        let calls = flood(&budget, "a", 1, 3, Duration::from_secs(10));
        let mut took = Vec::new();
        for call in calls {
            took.push(call.await.unwrap().unwrap().as_millis());
        }
        took.sort();
        assert_eq!(took, [0, 300, 600], "the config's 100 ms no longer holds");
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_cap_refuses_until_the_next_day_and_refusals_do_not_count() {
        let budget = Budget::new(Duration::from_millis(100), None);
        let capped = |day: ZoomDay, within| Ask {
            daily_cap: Some(2),
            today: day,
            ..ask("a", 1, within)
        };
        budget
            .admit(capped(DAY, Duration::from_secs(1)))
            .await
            .unwrap();
        // Refused by the pace, not the cap: it must not use up the day.
        let _ = flood(&budget, "a", 1, 3, Duration::from_secs(1));
        tokio::task::yield_now().await;
        let paced = budget.admit(capped(DAY, Duration::ZERO)).await;
        assert!(matches!(
            paced,
            Err(Refusal::Exhausted { daily: false, .. })
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        budget
            .admit(capped(DAY, Duration::from_secs(1)))
            .await
            .unwrap();
        let refused = budget.admit(capped(DAY, Duration::from_secs(1))).await;
        assert_eq!(
            refused,
            Err(Refusal::Exhausted {
                retry_after: DAY.left,
                daily: true
            })
        );
        let tomorrow = ZoomDay { number: 2, ..DAY };
        assert!(
            budget
                .admit(capped(tomorrow, Duration::from_secs(1)))
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn draining_refuses_what_cannot_start_within_the_grace_period() {
        let budget = Budget::new(Duration::from_millis(100), None);
        let queued = flood(&budget, "a", 1, 10, Duration::from_secs(10));
        tokio::task::yield_now().await;
        budget.drain(Instant::now() + Duration::from_millis(350));
        let mut outcomes = Vec::new();
        for call in queued {
            outcomes.push(call.await.unwrap().is_ok());
        }
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 4, "{outcomes:?}");
        let late = budget.admit(ask("a", 1, Duration::from_secs(10))).await;
        assert_eq!(late, Err(Refusal::Draining));
    }
}
