// Package schedule holds the time arithmetic of the RetentionPolicy and
// DeletionRequest controllers as pure functions: retention, wait and timeout
// durations with their cutoffs; cron schedules in an IANA time zone; which
// run is due after missed activations; and deterministic PurgeJob names.
//
// Nothing here reads the clock: every function takes the instants it needs,
// so the controller fixes "now" once per reconcile and a retry after a crash
// computes exactly the same cutoff and run name.
//
// # Durations
//
// ParseRetention accepts the API's RetentionDuration grammar: a positive whole
// number of at most five digits, without leading zeros, followed by one unit,
// h, d, w, mo or y ("36h", "90d", "6w", "18mo", "3y"). ParseWait accepts the
// same plus zero ("0h"). ParseTimeout accepts the Timeout grammar ("500ms",
// "5s", "2m").
//
// Hours, days and weeks are exact absolute durations: a day is 24 hours and a
// week 168 hours of elapsed time, whatever the wall clock of any zone does.
// Months and years are calendar arithmetic on the instant in UTC, clamped to
// the last day of the target month:
//
//	1mo before 2026-03-31T10:00Z = 2026-02-28T10:00Z   (Go's AddDate: 2026-03-03T10:00Z)
//	1mo before 2024-03-31T10:00Z = 2024-02-29T10:00Z   (leap year)
//	1y  before 2028-02-29T00:00Z = 2027-02-28T00:00Z   (Go's AddDate: 2027-03-01)
//	1mo after  2026-01-31T00:00Z = 2026-02-28T00:00Z   (same convention as PostgreSQL and java.time)
//
// Why clamp rather than normalize: a record is deleted when its timestamp is
// before the cutoff. A clamped cutoff is never later than the calendar
// boundary, so a record younger than the promised period is never deleted; Go's
// normalization (31 February = 3 March) would delete records only 28 days old
// under a "1mo" rule. The price is on the other side: for the last days of a
// long month the cutoff stays on the last day of the shorter month (runs on
// 28, 29, 30 and 31 March all cut at 28 February), so a record from the end of
// February can be kept up to three days past its one-month anniversary. When a
// promise must hold to the day, write it in days (30d) or hours: those are exact.
//
// # Cron schedules and daylight saving time
//
// Parse uses robfig/cron v3's standard five-field parser with descriptors
// (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly), the
// same library and semantics as a Kubernetes CronJob with spec.timeZone, in
// the zone loaded with time.LoadLocation. A day-of-week of 7 (Sunday, allowed
// by the API pattern and by Vixie cron) is accepted and means 0. @every, TZ=
// and CRON_TZ= prefixes, the zone name "Local" and schedules that can never
// fire (such as "0 0 30 2 *") are rejected.
//
// Daylight saving time, with examples from the tests:
//
//   - Spring forward (a wall-clock hour does not exist): an activation whose
//     local time falls in the missing hour does not run that day, exactly as in
//     robfig/cron and Kubernetes CronJob. "30 2 * * *" in America/New_York
//     runs 2026-03-07T02:30-05:00 (07:30Z), then nothing on 2026-03-08 (02:00
//     EST jumps to 03:00 EDT), then 2026-03-09T02:30-04:00 (06:30Z). The same
//     holds for Europe/Berlin on 2026-03-29. Activations outside the missing
//     hour ("0 3 * * *") run as usual. Unlike Vixie cron, the skipped run is
//     not made up at 03:00.
//   - Fall back (a wall-clock hour happens twice): a schedule with a fixed
//     minute and hour (no '*' or '?' in either field, and every descriptor but
//     @hourly) runs once per wall-clock time, at the first occurrence.
//     "30 1 * * *" in America/New_York on 2026-11-01 runs at 01:30 EDT
//     (05:30Z) only, not again at 01:30 EST (06:30Z); "30 2 * * *" in
//     Europe/Berlin on 2026-10-25 runs at 02:30 CEST (00:30Z) only. This is
//     the one place where Lethe departs from robfig/cron and Kubernetes
//     CronJob, which run such a job twice (kubernetes/kubernetes#121594); it
//     matches Vixie cron. Times outside the repeated hour (02:30 in New York,
//     03:00 in Berlin) are not affected and run once anyway.
//   - Schedules with '*' in the minute or hour field (@hourly, "*/15 * * * *",
//     "30 * * * *") follow elapsed time through the repeated hour, as in
//     robfig/cron, Kubernetes and Vixie cron: "*/15 * * * *" in New York fires
//     every 15 minutes of real time on 2026-11-01, eight times between 01:00
//     EDT and 01:45 EST.
//   - Shifts that are not a whole hour (Australia/Lord_Howe moves 30 minutes,
//     Antarctica/Troll two hours) follow the same rules. robfig/cron itself
//     gets Lord Howe wrong (it drops whole days' runs and fires "30 1" at
//     02:30), so Next only uses robfig/cron to enumerate wall-clock times and
//     maps them to instants itself; a test compares it with a minute-by-minute
//     scan in fourteen zones around their transitions.
//
// # Missed runs
//
// MostRecent and Due follow the CronJob controller: at most one missed run is
// ever caught up (the most recent one), and it is skipped when it is older
// than the starting deadline. Counting missed activations stops at
// MaxMissedCount and the most recent activation is then found by bisection,
// so a "* * * * *" schedule missed for a year costs about 130 calls to Next,
// not half a million.
package schedule
